"""The catalogue of flags (brittle.checks.catalogue) is complete and true to the code: every
sanity check the code can return is listed, every listed home exists, and the thresholds its
sentences quote are the constants the checks use."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import brittle
from brittle.checks import FLAGS, Flag, masking, probes, sweep
from brittle.checks.inputs import IMPLAUSIBLE_CLASSES

SRC = Path(brittle.__file__).parent
NAMED = re.compile(r'name, title = "(\w+)"|SanityCheck\(\s*"(\w+)"|^CHECK = "(\w+)"', re.M)


def _sanity_names_in_code() -> set[str]:
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for match in NAMED.finditer(path.read_text()):
            names.add(next(g for g in match.groups() if g))
    return names


def _flag(name: str) -> Flag:
    return next(f for f in FLAGS if f.name == name)


def test_every_sanity_check_the_code_returns_is_in_the_catalogue() -> None:
    in_code = _sanity_names_in_code()
    listed = {f.name for f in FLAGS if f.kind == "sanity check"}
    assert len(in_code) >= 10  # the pattern still finds the checks
    assert in_code == listed


def test_names_are_unique_and_every_home_is_a_function() -> None:
    names = [f.name for f in FLAGS]
    assert len(names) == len(set(names))
    for flag in FLAGS:
        module, function = flag.home.split(":")
        assert inspect.isfunction(getattr(importlib.import_module(module), function)), flag.home
        assert flag.holds and flag.action


def test_every_check_function_of_the_package_is_a_home() -> None:
    homes = {f.home for f in FLAGS}
    for module in (sweep, probes):
        for name, obj in vars(module).items():
            if (
                name.endswith("_check")
                and inspect.isfunction(obj)
                and obj.__module__ == module.__name__
            ):
                assert f"{module.__name__}:{name}" in homes, name


def test_the_thresholds_quoted_are_the_constants() -> None:
    assert f"{round(100 * masking.GAP_THRESHOLD)} points" in _flag("softmax_gap").holds
    assert f"{round(100 * masking.GAP_THRESHOLD)} points" in _flag("single_step_gap").holds
    assert f"{round(100 * sweep.RECORDED_MARGIN)} points" in _flag("recorded_accuracy").holds
    assert masking.VANISHING_SHARE == 0.5
    assert "half" in _flag("vanishing_gradient").holds and "half" in _flag("gradients").holds
    assert f"{IMPLAUSIBLE_CLASSES} outputs" in _flag("implausible_classes").holds
