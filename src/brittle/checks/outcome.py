"""What a check returns: passed, a warning with the numbers behind it and what to do, or not
run with the reason. A warning is shown in the report, never dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["passed", "warning", "not run"]
PASSED: Status = "passed"
WARNING: Status = "warning"
NOT_RUN: Status = "not run"


@dataclass(frozen=True)
class SanityCheck:
    """One check: its id, a title saying what must hold, its status, a message (for a
    warning: the numbers and what to do; for a check not run: why) and its numbers."""

    name: str
    title: str
    status: Status
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def warned(self) -> bool:
        return self.status == WARNING

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "numbers": self.numbers,
        }
