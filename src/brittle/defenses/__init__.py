"""Defences: training objectives that harden a model.

- adversarial training: :class:`FGSMTraining` (Goodfellow et al. 2015),
  :class:`PGDTraining` (Madry et al. 2018), :class:`AttackTraining` with any fixed-budget
  attack, e.g. JSMA (Papernot et al. 2016),
  :class:`EnsembleTraining` (Tramer et al. 2018);
- Goodfellow's controls, :class:`NoiseTraining` (sign and uniform noise);
- defensive distillation: :class:`TemperatureCrossEntropy` and :func:`soft_labels`.

Each is an objective for :func:`brittle.zoo.train_model`, e.g.
``train_model(model, x, y, objective=FGSMTraining(eps=0.25, alpha=0.5))``. L1 weight decay,
the linear-model alternative of Goodfellow's section 5, is ``train_model(..., l1=...)``.
"""

from .adversarial import AttackTraining, EnsembleTraining, FGSMTraining, PGDTraining
from .choose import DEFAULT_EPS, DEFENSES, DefenseOptions, build_objective
from .distillation import TemperatureCrossEntropy, describe_distillation, soft_labels
from .mixture import MixedObjective
from .noise import NoiseTraining

__all__ = [
    "DEFAULT_EPS",
    "DEFENSES",
    "AttackTraining",
    "DefenseOptions",
    "EnsembleTraining",
    "FGSMTraining",
    "MixedObjective",
    "NoiseTraining",
    "PGDTraining",
    "TemperatureCrossEntropy",
    "build_objective",
    "describe_distillation",
    "soft_labels",
]
