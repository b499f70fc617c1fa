"""Defences by name: one registration each, with the options it takes and its builder.

A defence is registered once (:func:`register`): its name, how it uses each option of
``train --defense`` (a default, or what it needs when the option is required) and a function
that builds its training objective from the options' values. :mod:`brittle.defenses.choose`
checks and builds from the registry and the command line makes its options from it, so a new
defence is one registration; a new option is one :class:`Option` (and a field of
:class:`~brittle.defenses.choose.DefenseOptions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from brittle.certify.smoothing import check_sigma
from brittle.errors import InputError
from brittle.validation import check_positive_integer

from .adversarial import AttackTraining, EnsembleTraining, FGSMTraining, PGDTraining
from .distillation import TemperatureCrossEntropy, check_temperature
from .gaussian import GaussianTraining
from .ibp import IBPTraining
from .mixture import MixedObjective, check_alpha, check_eps
from .noise import NoiseKind, NoiseTraining

Objective = MixedObjective | TemperatureCrossEntropy | IBPTraining
Bounds = tuple[float, float]
Build = Callable[[Mapping[str, Any], Sequence[nn.Module], Bounds], Objective]
"""``build(values, static, bounds)``: the objective from every option the defence uses
(given, else its default), the loaded ``--static`` models and the input box."""


def check_step_size(step_size: float) -> float:
    """An ascent step: a finite number >= 0."""
    return check_eps(step_size, "--step-size")


@dataclass(frozen=True)
class Option:
    """An option of ``train --defense``, one flag shared by the defences that use it.

    ``kind``: ``float``, ``int``, ``str`` or ``tuple`` (comma-separated paths); ``help``: what
    it is, without its defaults (the help adds those of each defence); ``check`` validates a
    given value (an :class:`~brittle.errors.InputError` says what is wrong).
    """

    name: str
    kind: type
    help: str
    metavar: str
    check: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def given(self, value: Any) -> bool:
        """Whether ``value`` was given: not ``None`` (nor empty, for paths)."""
        return value is not None and not (self.kind is tuple and len(value) == 0)


EPS = Option("eps", float, "Budget of the training perturbation", "X", check_eps)
ALPHA = Option("alpha", float, "Weight of the clean loss, in [0, 1]", "X", check_alpha)
STEPS = Option("steps", int, "PGD steps", "N", partial(check_positive_integer, name="--steps"))
STEP_SIZE = Option("step_size", float, "PGD step", "X", check_step_size)
TEMPERATURE = Option("temperature", float, "Softmax temperature", "T", check_temperature)
STATIC = Option(
    "static", tuple, "Pre-trained models that craft part of each batch's examples", "A.pt,B.pt"
)
TEACHER = Option("teacher", str, "Teacher checkpoint", "PATH")
SIGMA = Option("sigma", float, "Standard deviation of the Gaussian noise", "S", check_sigma)


@dataclass(frozen=True)
class Uses:
    """How a defence uses an option: its ``default`` (``shown``: the default in words, when
    it is worked out later), or, when ``required`` is set, what the user must give (the
    error says ``--defense NAME needs --FLAG <required>``; ``shown`` then goes to the help)."""

    option: Option
    default: Any = None
    shown: str | None = None
    required: str | None = None

    def describe(self) -> str:
        """The default (or requirement) in the help: ``0.25``, ``the paper: 100``, ``""``."""
        if self.required is not None or self.default is None:
            return self.shown or ""
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


@dataclass(frozen=True)
class Defense:
    """A defence of ``train --defense``: its name, the options it uses, its builder."""

    name: str
    uses: tuple[Uses, ...]
    build: Build

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option this defence uses: the value given, else its default."""
        out = {}
        for use in self.uses:
            value = given.get(use.option.name)
            out[use.option.name] = value if use.option.given(value) else use.default
        return out


_DEFENSES: dict[str, Defense] = {}


def register(defense: Defense) -> Defense:
    """Add ``defense`` under its name; a name already taken is refused."""
    if defense.name in _DEFENSES:
        raise ValueError(f"a defence named {defense.name!r} is already registered")
    _DEFENSES[defense.name] = defense
    return defense


def defense_names() -> list[str]:
    """The names ``--defense`` accepts, in the order they were registered."""
    return list(_DEFENSES)


def find_defense(name: str) -> Defense:
    """The defence registered as ``name``, or an :class:`InputError` listing them."""
    if name not in _DEFENSES:
        raise InputError(f"unknown defence {name!r}: use one of {', '.join(_DEFENSES)}")
    return _DEFENSES[name]


def defense_options() -> list[Option]:
    """Every option some defence uses, each once, in the order they first appear."""
    seen: dict[str, Option] = {}
    for defense in _DEFENSES.values():
        for use in defense.uses:
            seen.setdefault(use.option.name, use.option)
    return list(seen.values())


def option_help(option: Option) -> str:
    """``option``'s help: its text and who uses it with which default, e.g. ``PGD steps (pgd;
    default: 7)`` or ``Weight of the clean loss, in [0, 1] (default: 0.5; pgd 0)``."""
    users = [(d.name, u) for d in _DEFENSES.values() for u in d.uses if u.option is option]
    if len(users) == 1:
        name, use = users[0]
        shown = use.describe()
        prefix = "" if use.required is not None else "default: "
        return f"{option.help} ({name}{f'; {prefix}{shown}' if shown else ''})."
    defaults = [use.describe() for _, use in users]
    common = max(defaults, key=defaults.count)
    others = ", ".join(
        f"{name} {text}" for (name, _), text in zip(users, defaults, strict=True) if text != common
    )
    return f"{option.help} (default: {common}{f'; {others}' if others else ''})."


# ------------------------------------------------------------------ the defences
def _fgsm(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    return FGSMTraining(values["eps"], values["alpha"], bounds)


def _pgd(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    return PGDTraining(values["eps"], values["steps"], values["step_size"], values["alpha"], bounds)


def _ensemble(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    sources = list(values["static"])
    return EnsembleTraining(values["eps"], static, values["alpha"], bounds, sources=sources)


def _distill(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    return TemperatureCrossEntropy(values["temperature"])


def _noise(kind: NoiseKind) -> Build:
    def build(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
        return NoiseTraining(values["eps"], kind, values["alpha"], bounds)

    return build


def _gaussian(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    return GaussianTraining(values["sigma"], values["alpha"])


def _ibp(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    return IBPTraining(values["eps"], values["alpha"], bounds=bounds)


def _jsma(values: Mapping[str, Any], static: Sequence[nn.Module], bounds: Bounds) -> Objective:
    from brittle.attacks import JSMA

    return AttackTraining(
        JSMA(values["eps"]), values["alpha"], bounds, target="random", name="jsma"
    )


GOODFELLOW = (Uses(EPS, 0.25), Uses(ALPHA, 0.5))
"""Goodfellow et al.'s MNIST budget (Linf 0.25) and weight of the clean loss (0.5)."""

register(Defense("fgsm", GOODFELLOW, _fgsm))
register(
    Defense(
        "pgd",
        (
            Uses(EPS, 0.3),  # Madry et al.'s MNIST budget
            Uses(ALPHA, 0.0),  # Madry et al. train on the adversarial examples alone
            Uses(STEPS, 7),
            Uses(STEP_SIZE, shown="2.5 * eps / steps"),
        ),
        _pgd,
    )
)
register(
    Defense(
        "ensemble",
        (
            *GOODFELLOW,
            Uses(
                STATIC,
                required="with the pre-trained models, e.g. --static runs/a.pt,runs/b.pt",
            ),
        ),
        _ensemble,
    )
)
register(
    Defense(
        "distill",
        (
            Uses(TEMPERATURE, required="T (the paper: 100)", shown="the paper: 100"),
            Uses(TEACHER, shown="train one at --temperature first"),
        ),
        _distill,
    )
)
register(Defense("noise-sign", GOODFELLOW, _noise("sign")))
register(Defense("noise-uniform", GOODFELLOW, _noise("uniform")))
register(
    Defense(
        "jsma",
        (Uses(EPS, 0.145), Uses(ALPHA, 0.5)),  # Papernot et al.'s Upsilon = 14.5% of the features
        _jsma,
    )
)
register(
    Defense(
        "gaussian",
        (Uses(SIGMA, 0.25), Uses(ALPHA, 0.0)),  # Cohen et al. train on the noisy copies alone
        _gaussian,
    )
)
register(
    Defense(
        "ibp",
        # Gowal et al.: kappa ends at 0.5; eps ramps from 0 over the first 1,000 steps
        (Uses(EPS, 0.1), Uses(ALPHA, 0.5)),
        _ibp,
    )
)
