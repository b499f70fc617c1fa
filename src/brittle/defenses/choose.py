"""The defences by name, as ``brittle train --defense NAME`` offers them, built and checked.

Every option is checked here, before any data is loaded or any model trained, and an
option that the chosen defence does not use is refused rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from brittle.attacks import JSMA
from brittle.errors import InputError

from .adversarial import AttackTraining, EnsembleTraining, FGSMTraining, PGDTraining
from .distillation import TemperatureCrossEntropy, check_temperature
from .mixture import MixedObjective, check_alpha, check_eps
from .noise import NoiseTraining

DEFENSES = ("fgsm", "pgd", "ensemble", "distill", "noise-sign", "noise-uniform", "jsma")
"""The names of ``--defense``."""

DEFAULT_EPS = {
    "fgsm": 0.25,
    "ensemble": 0.25,
    "noise-sign": 0.25,
    "noise-uniform": 0.25,
    "pgd": 0.3,
    "jsma": 0.145,
}
"""The papers' MNIST budgets, used when ``eps`` is not given: Goodfellow's 0.25 (Linf), Madry
et al.'s 0.3 (Linf), Papernot et al.'s Upsilon = 14.5% of the features (L0, JSMA)."""
DEFAULT_PGD_STEPS = 7
DEFAULT_ALPHA = {"pgd": 0.0}
"""The weight of the clean loss when ``alpha`` is not given: 0 for pgd (Madry et al. train on
the adversarial examples alone), Goodfellow's 0.5 for the others."""


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

    def check(self) -> None:
        """Refuse an unknown defence, options it does not use, and values out of range."""
        if self.name not in DEFENSES:
            raise InputError(f"unknown defence {self.name!r}: use one of {', '.join(DEFENSES)}")
        used = {
            "eps": self.name != "distill",
            "alpha": self.name != "distill",
            "steps": self.name == "pgd",
            "step_size": self.name == "pgd",
            "temperature": self.name == "distill",
            "static": self.name == "ensemble",
            "teacher": self.name == "distill",
        }
        for option, applies in used.items():
            value = getattr(self, option)
            if not applies and value not in (None, ()):
                flag = "--" + option.replace("_", "-")
                raise InputError(f"{flag} does not apply to --defense {self.name}; drop it")
        if self.eps is not None:
            check_eps(self.eps)
        if self.alpha is not None:
            check_alpha(self.alpha)
        if self.name == "distill":
            if self.temperature is None:
                raise InputError("--defense distill needs --temperature T (the paper: 100)")
            check_temperature(self.temperature)
        if self.name == "ensemble" and not self.static:
            raise InputError(
                "--defense ensemble needs --static with the pre-trained models, e.g. "
                "--static runs/a.pt,runs/b.pt"
            )
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            raise InputError(f"--steps must be at least 1, got {self.steps!r}")
        if self.step_size is not None:
            check_eps(self.step_size, "--step-size")


def build_objective(
    options: DefenseOptions,
    static: Sequence[nn.Module] = (),
    bounds: tuple[float, float] = (0.0, 1.0),
) -> MixedObjective | TemperatureCrossEntropy:
    """The training objective of a checked defence (``static``: the loaded static models)."""
    options.check()
    name = options.name
    if name == "distill":
        assert options.temperature is not None
        return TemperatureCrossEntropy(options.temperature)
    eps = DEFAULT_EPS[name] if options.eps is None else options.eps
    alpha = DEFAULT_ALPHA.get(name, 0.5) if options.alpha is None else options.alpha
    if name == "fgsm":
        return FGSMTraining(eps, alpha, bounds)
    if name in ("noise-sign", "noise-uniform"):
        return NoiseTraining(eps, "sign" if name == "noise-sign" else "uniform", alpha, bounds)
    if name == "ensemble":
        return EnsembleTraining(eps, static, alpha, bounds, sources=list(options.static))
    if name == "pgd":
        steps = DEFAULT_PGD_STEPS if options.steps is None else options.steps
        return PGDTraining(eps, steps, options.step_size, alpha, bounds)
    return AttackTraining(JSMA(eps), alpha, bounds, target="random", name="jsma")
