"""Goodfellow 2015's controls (section 6): training on noisy copies instead of adversarial ones.

    x' = clip(x + eps * s),  s_i = +-1 with probability 1/2 each      ("sign")
    x' = clip(x + u),        u_i ~ U(-eps, eps)                       ("uniform")

mixed with the clean loss as adversarial training is (:class:`~.mixture.MixedObjective`).
Zero-mean noise does not find the directions that raise the loss, so it should not help
against FGSM (the paper's maxout network: 86.2% and 90.4% adversarial error). The draws come
from the generator :func:`~brittle.zoo.train_model` seeds, per row of the global batch
(:func:`~brittle.zoo.sharding.batch_rand`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from brittle.errors import InputError
from brittle.zoo.sharding import batch_rand

from .mixture import MixedObjective

NoiseKind = Literal["sign", "uniform"]


class NoiseTraining(MixedObjective):
    """Training on random +-eps sign noise (``kind="sign"``) or U(-eps, eps) noise."""

    name = "noise"

    def __init__(
        self,
        eps: float,
        kind: NoiseKind = "sign",
        alpha: float = 0.5,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if kind not in ("sign", "uniform"):
            raise InputError(f"noise kind must be 'sign' or 'uniform', got {kind!r}")
        super().__init__(eps, alpha, bounds)
        self.kind: NoiseKind = kind

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        u = batch_rand(x.shape, device=x.device, dtype=x.dtype)
        noise = torch.where(u < 0.5, -1.0, 1.0) if self.kind == "sign" else 2 * u - 1
        return x + self.eps * noise

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": f"noise-{self.kind}"}
