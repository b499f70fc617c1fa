"""Gaussian data augmentation (Cohen, Rosenfeld & Kolter 2019, section 5): the base classifier
of randomised smoothing is trained on noisy copies of the batch,

    x' = x + eps,  eps ~ N(0, sigma^2 I),

at the noise level it will be smoothed with, mixed with the clean loss as the other defences
are (:class:`~.mixture.MixedObjective`; the paper trains on the noisy copies alone, alpha = 0).
The noise is not clipped to the input box: the smoothed classifier of
:mod:`brittle.certify.smoothing` is defined with unclipped noise, and the base model must
learn the inputs it will see. The draws come from the generator
:func:`~brittle.zoo.train_model` seeds, per row of the global batch
(:func:`~brittle.zoo.sharding.batch_rand`).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from brittle.certify.smoothing import check_sigma
from brittle.zoo.sharding import batch_rand

from .mixture import MixedObjective


class GaussianTraining(MixedObjective):
    """Training on ``x + N(0, sigma^2 I)`` (unclipped), weighted against the clean loss by
    ``alpha`` (default 0: the noisy copies alone, as Cohen et al. train)."""

    name = "gaussian"

    def __init__(self, sigma: float, alpha: float = 0.0) -> None:
        # the objective clips its perturbed batch to its bounds: none here, the noise is kept
        super().__init__(check_sigma(sigma), alpha, (-math.inf, math.inf))
        self.sigma = self.eps

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        return x + self.sigma * batch_rand(x.shape, device=x.device, dtype=x.dtype, normal=True)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sigma": self.sigma, "alpha": self.alpha}
