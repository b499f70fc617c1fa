"""Interval bound propagation training (Gowal et al. 2018, section 3.1).

Each step mixes the clean cross-entropy with that of the worst-case logits the interval
bounds allow inside the eps-ball (their eq. 8, with the last layer folded into the margins):

    L = kappa * l(z(x), y) + (1 - kappa) * l(z_hat(x, eps), y),
    z_hat_y = 0,  z_hat_j = -lower(z_y - z_j)  for j != y,

so minimising the second term pushes up the certified margins
(:func:`~brittle.certify.bound_propagation.class_margins`). Gowal et al. ramp ``eps`` linearly
from 0 to its target, and ``kappa`` from 1 to its final value (0.5), over the first steps of
training (after a warm-up at ``eps = 0``): here over ``ramp`` steps after ``warmup``.

The bounds step through the layers bound propagation supports
(:mod:`brittle.certify.layers`); batchnorm is bounded with its running statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from brittle.certify.bound_propagation import class_margins
from brittle.certify.layers import network_ops
from brittle.classifier import Classifier
from brittle.threat import Norm
from brittle.validation import check_integer

from .mixture import check_alpha, check_bounds, check_eps


class IBPTraining:
    """Gowal et al.'s IBP training as a :class:`~brittle.zoo.TrainingStep`: parts
    ``clean`` and ``verified`` (the cross-entropy of the worst-case logits at the current
    eps). ``alpha`` is the final kappa, the weight of the clean loss."""

    name = "ibp"
    parts: tuple[str, ...] = ("clean", "verified")

    def __init__(
        self,
        eps: float,
        alpha: float = 0.5,
        warmup: int = 0,
        ramp: int = 1000,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.eps = check_eps(eps)
        self.alpha = check_alpha(alpha)
        self.warmup = check_integer(warmup, "warmup", low=0)
        self.ramp = check_integer(ramp, "ramp", low=0)
        self.bounds = check_bounds(bounds)
        self.steps_done = 0

    def schedule(self, step: int) -> tuple[float, float]:
        """``(eps, kappa)`` at training step ``step`` (from 0)."""
        done = step - self.warmup
        frac = 1.0 if self.ramp == 0 else min(max(done / self.ramp, 0.0), 1.0)
        if done < 0:
            frac = 0.0
        return frac * self.eps, 1.0 - frac * (1.0 - self.alpha)

    def _classifier(self, model: nn.Module) -> Classifier:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        return Classifier(model, bounds=self.bounds)

    def check(self, model: nn.Module, x: Tensor, num_classes: int) -> None:
        """Refuse a model whose layers bound propagation cannot step through."""
        network_ops(self._classifier(model))

    def backward(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Accumulate the gradient of ``L``; return ``(L, clean, verified)``."""
        eps, kappa = self.schedule(self.steps_done)
        self.steps_done += 1
        clean = F.cross_entropy(model(x), y)
        clf = self._classifier(model)
        radius = torch.full((len(x),), eps, dtype=x.dtype, device=x.device)
        margins = class_margins(network_ops(clf), x, y, radius, Norm.LINF, clf.bounds)
        k = margins.shape[1] + 1
        classes = torch.arange(k, device=y.device).expand(len(y), k)
        others = classes[classes != y[:, None]].view(len(y), k - 1)
        worst = torch.zeros(len(y), k, dtype=margins.dtype, device=margins.device)
        worst = worst.scatter(1, others, -margins)
        verified = F.cross_entropy(worst, y)
        (kappa * clean + (1 - kappa) * verified).backward()
        clean, verified = clean.detach(), verified.detach()
        return torch.stack([kappa * clean + (1 - kappa) * verified, clean, verified])

    def describe(self) -> dict[str, Any]:
        """The defence and its parameters, as recorded in a checkpoint's metadata."""
        return {
            "name": self.name,
            "eps": self.eps,
            "alpha": self.alpha,
            "warmup": self.warmup,
            "ramp": self.ramp,
            "norm": "linf",
        }
