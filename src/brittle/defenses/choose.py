"""The defences by name, as ``brittle train --defense NAME`` offers them, built and checked.

Every option is checked here, before any data is loaded or any model trained, and an
option that the chosen defence does not use is refused rather than silently ignored. What
each defence uses, and how it is built, comes from its registration
(:mod:`brittle.defenses.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from brittle.errors import InputError

from .registry import EPS, Objective, defense_names, defense_options, find_defense

DEFENSES = tuple(defense_names())
"""The names of ``--defense`` (the built-in defences; :func:`~brittle.defenses.registry.
defense_names` also lists those registered later)."""

DEFAULT_EPS = {
    d: use.default for d in DEFENSES for use in find_defense(d).uses if use.option is EPS
}
"""The papers' MNIST budgets, used when ``eps`` is not given: Goodfellow's 0.25 (Linf), Madry
et al.'s 0.3 (Linf), Papernot et al.'s Upsilon = 14.5% of the features (L0, JSMA)."""


@dataclass(frozen=True)
class DefenseOptions:
    """The options of ``--defense``; ``None`` means "not given" (a default applies)."""

    name: str
    eps: float | None = None
    alpha: float | None = None
    steps: int | None = None
    step_size: float | None = None
    temperature: float | None = None
    static: Sequence[str] = ()
    teacher: str | None = None
    sigma: float | None = None

    def check(self) -> None:
        """Refuse an unknown defence, options it does not use, and values out of range."""
        defense = find_defense(self.name)
        used = {use.option.name for use in defense.uses}
        for option in defense_options():
            if option.name not in used and option.given(getattr(self, option.name)):
                raise InputError(f"{option.flag} does not apply to --defense {self.name}; drop it")
        for use in defense.uses:
            value = getattr(self, use.option.name)
            if not use.option.given(value):
                if use.required is not None:
                    raise InputError(
                        f"--defense {self.name} needs {use.option.flag} {use.required}"
                    )
            elif use.option.check is not None:
                use.option.check(value)

    def given(self) -> dict[str, Any]:
        """The options that were given, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


def build_objective(
    options: DefenseOptions,
    static: Sequence[nn.Module] = (),
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Objective:
    """The training objective of a checked defence (``static``: the loaded static models)."""
    options.check()
    defense = find_defense(options.name)
    return defense.build(defense.values(options.given()), static, bounds)
