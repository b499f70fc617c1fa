"""The objective every adversarial-style defence trains on: clean loss mixed with the loss at a
perturbed copy of the batch (Goodfellow, Shlens & Szegedy 2015, section 6),

    J~(theta, x, y) = alpha * J(theta, x, y) + (1 - alpha) * J(theta, x', y),

where J is the cross-entropy and x' is built from x on the current weights at every step (an
adversarial example, or noise for the controls) and held constant: the gradient does not
flow through x' (sign has derivative zero, so for FGSM this is the exact gradient of J~).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from brittle.classifier import Classifier, Mode
from brittle.errors import InputError
from brittle.validation import is_real

CLEAN_SAMPLE = 16
"""With alpha = 0 the clean loss is not part of the objective; the progress bar and the
history then report it on the first this many samples of each batch (an estimate that costs
an eighth of a forward pass at batch 128)."""


def check_eps(eps: float, name: str = "eps") -> float:
    """A perturbation size: a finite number >= 0."""
    if not is_real(eps) or not math.isfinite(eps):
        raise InputError(f"{name} must be a finite number >= 0, got {eps!r}")
    if eps < 0:
        raise InputError(f"{name} must be >= 0, got {eps:g}; it is the size of the perturbation")
    return float(eps)


def check_alpha(alpha: float) -> float:
    """The weight of the clean loss: a number in [0, 1]."""
    if not is_real(alpha) or not 0 <= alpha <= 1:
        raise InputError(
            f"alpha must be in [0, 1], got {alpha!r}: it weighs the clean loss against the "
            "adversarial one (Goodfellow's 0.5: --alpha 0.5)"
        )
    return float(alpha)


def check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """The input box ``(low, high)``, ``low < high`` (infinite ends allowed)."""
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be two numbers (low, high), got {bounds!r}") from None
    if not low < high:
        raise InputError(f"bounds must satisfy low < high, got ({low:g}, {high:g})")
    return low, high


class MixedObjective(ABC):
    """``J~ = alpha J(x) + (1 - alpha) J(x')`` with ``x' = perturb(x)`` inside ``bounds``.

    A :class:`~brittle.zoo.TrainingStep`: it backpropagates itself and reports the parts
    ``clean`` (J at x; with ``alpha = 0``, estimated on :data:`CLEAN_SAMPLE` rows) and ``adv``
    (J at x'). A subclass that sets ``uses_clean_gradient``
    receives grad_x J(theta, x, y) of the clean pass in :meth:`perturb` at no extra cost: the
    clean backward computes the parameters' gradient and the input's together, so an FGSM
    step costs two forward and two backward passes, twice a plain step.
    """

    name: str
    parts: tuple[str, ...] = ("clean", "adv")
    uses_clean_gradient: ClassVar[bool] = False

    def __init__(
        self, eps: float, alpha: float = 0.5, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        self.eps = check_eps(eps)
        self.alpha = check_alpha(alpha)
        self.bounds = check_bounds(bounds)
        self._wrapped: Classifier | None = None

    def classifier(self, model: nn.Module) -> Classifier:
        """``model`` as a :class:`~brittle.Classifier` in :attr:`bounds` (made once).

        A model wrapped for data-parallel training is unwrapped: examples are crafted on
        this process's rows with its own copy of the weights (the same on every process),
        with no gradient averaging and no collective the other processes would wait on.
        """
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if self._wrapped is None or self._wrapped.module is not model:
            self._wrapped = Classifier(model, bounds=self.bounds)
        return self._wrapped

    def _clean_estimate(self, model: nn.Module, x: Tensor, y: Tensor, mode: Mode) -> Tensor:
        """J on the first :data:`CLEAN_SAMPLE` rows, without gradient, in ``mode`` (norm
        layers do not record these inputs)."""
        with torch.no_grad(), self.classifier(model).evaluation(mode):
            return F.cross_entropy(model(x[:CLEAN_SAMPLE]), y[:CLEAN_SAMPLE])

    def check(self, model: nn.Module, x: Tensor, num_classes: int) -> None:  # noqa: B027
        """Nothing to check beyond the arguments (subclasses with fixed models check them)."""

    def backward(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Accumulate grad_theta J~ into the parameters; return ``(J~, J(x), J(x'))``."""
        alpha = self.alpha
        grad = None
        if self.uses_clean_gradient:
            x_in = x.detach().requires_grad_(True)
            clean = F.cross_entropy(model(x_in), y)
            if alpha > 0:
                (alpha * clean).backward()
                grad = x_in.grad
            else:
                (grad,) = torch.autograd.grad(clean, x_in)
        elif alpha > 0:
            clean = F.cross_entropy(model(x), y)
            (alpha * clean).backward()
        else:
            clean = self._clean_estimate(model, x, y, "train")
        x_adv = self.perturb(model, x, y, grad).detach().clamp(*self.bounds)
        if alpha < 1:
            adv = F.cross_entropy(model(x_adv), y)
            ((1 - alpha) * adv).backward()
        else:
            with torch.no_grad():
                adv = F.cross_entropy(model(x_adv), y)
        clean, adv = clean.detach(), adv.detach()
        return torch.stack([alpha * clean + (1 - alpha) * adv, clean, adv])

    @abstractmethod
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        """The perturbed batch x' (clipped to the box afterwards); ``grad`` is grad_x J at x
        when :attr:`uses_clean_gradient`, else ``None``."""

    def describe(self) -> dict[str, Any]:
        """The defence and its parameters, as recorded in a checkpoint's metadata."""
        return {"name": self.name, "eps": self.eps, "alpha": self.alpha, **self._details()}

    def _details(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({fields})"
