"""Adversarial training: the examples of every step crafted on the current weights.

- :class:`FGSMTraining` (Goodfellow, Shlens & Szegedy 2015, section 6):
  x' = clip(x + eps * sign(grad_x J(theta, x, y))), the gradient of the clean pass itself.
- :class:`PGDTraining` (Madry et al. 2018): min_theta E max_{||delta|| <= eps}
  J(theta, x + delta, y), the inner maximum by k projected steps from a uniform random start,
  every sample for all k steps (the end of the ascent, not the first point that fools it).
- :class:`AttackTraining`: x' from any fixed-budget attack of brittle through the attack
  base (which re-checks each result: two more forward passes a step), e.g. JSMA (Papernot
  et al. 2016's suggested defence).
- :class:`EnsembleTraining` (Tramer et al. 2018): part of each batch's examples crafted by
  FGSM on fixed pre-trained models instead of the current one, which decouples the examples
  from the model being trained.

All mix the clean and the adversarial loss as in :mod:`.mixture`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle.attacks import FGSM
from brittle.attacks.base import FixedBudgetAttack, TargetSpec
from brittle.attacks.fgsm import steepest_ascent
from brittle.classifier import Classifier, Mode
from brittle.errors import InputError
from brittle.perturbation import broadcast_view, project
from brittle.threat import Norm
from brittle.validation import check_positive_integer
from brittle.zoo.sharding import batch_rand, batch_rows

from .mixture import MixedObjective


class FGSMTraining(MixedObjective):
    """Goodfellow's adversarial objective with x' = clip(x + eps * sign(grad_x J(theta, x, y))).

    The input gradient is the clean pass's (the training graph, so dropout uses that pass's
    mask, as the paper's maxout network did): two forward and two backward passes a step.
    """

    name = "fgsm"
    uses_clean_gradient: ClassVar[bool] = True

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        assert grad is not None
        return x + self.eps * grad.sign()


class PGDTraining(MixedObjective):
    """Madry et al.'s adversarial training with a k-step PGD on the current weights:

        x_0 = Proj(x + u), u uniform in the eps-ball (``random_start``),
        x_{i+1} = Proj_{B_eps(x) ∩ box}(x_i + a * s(grad_x J(theta, x_i, y))),

    ``s`` the sign (Linf) or grad / ||grad||_2 (L2), ``a`` = ``step_size`` or 2.5 eps / k, and
    the training loss at x_k. ``alpha`` defaults to 0, Madry's objective (the clean loss is
    then only estimated for the progress bar); alpha > 0 mixes it in as Goodfellow does, at
    the cost of a clean pass. The ascent runs the model in ``mode`` (default ``"train"``)
    with frozen parameters and norm layers that do not record its inputs; it is the attack
    loop of :class:`~brittle.attacks.PGD` without the attack base's clean prediction and
    re-check, which a training step does not need (two forward passes saved a step).
    """

    name = "pgd"

    def __init__(
        self,
        eps: float,
        steps: int = 7,
        step_size: float | None = None,
        alpha: float = 0.0,
        bounds: tuple[float, float] = (0.0, 1.0),
        norm: str | Norm = "linf",
        random_start: bool = True,
        mode: Mode = "train",
    ) -> None:
        super().__init__(eps, alpha, bounds)
        check_positive_integer(steps, "steps")
        self.norm = Norm.parse(norm)
        if self.norm not in (Norm.LINF, Norm.L2):
            raise InputError(f"PGD training works in linf or l2, got {self.norm.value}")
        self.steps = steps
        self.step_size = 2.5 * self.eps / steps if step_size is None else step_size
        self.random_start, self.mode = random_start, mode

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        clf = self.classifier(model)
        with clf.evaluation(self.mode):
            x_adv = project(x, x + self._start(x), self.norm, self.eps, clf.bounds)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                loss = F.cross_entropy(clf.logits(x_adv), y)
                (g,) = torch.autograd.grad(loss, x_adv)
                moved = x_adv.detach() + self.step_size * steepest_ascent(g, self.norm)
                x_adv = project(x, moved, self.norm, self.eps, clf.bounds)
        return x_adv

    def _start(self, x: Tensor) -> Tensor:
        """A uniform draw in the eps-ball per sample (zero without ``random_start``), from the
        generator that :func:`~brittle.zoo.train_model` seeds, per row of the global batch
        (:func:`~brittle.zoo.sharding.batch_rand`)."""
        if not self.random_start:
            return torch.zeros_like(x)
        if self.norm is Norm.LINF:
            return self.eps * (2 * batch_rand(x.shape, device=x.device, dtype=x.dtype) - 1)
        direction = batch_rand(x.shape, device=x.device, dtype=x.dtype, normal=True)
        direction = direction / broadcast_view(direction.flatten(1).norm(dim=1), x)
        radius = batch_rand((len(x),), device=x.device) ** (1 / x[0].numel())
        return self.eps * broadcast_view(radius, x) * direction

    def _details(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "norm": self.norm.value,
            "random_start": self.random_start,
            "mode": self.mode,
        }


class AttackTraining(MixedObjective):
    """Adversarial training on the examples of ``attack`` against the current weights.

    ``attack`` is a fixed-budget attack; it runs through brittle's attack base on the model
    wrapped as a :class:`~brittle.Classifier` in ``mode`` (default ``"train"``: dropout on
    while crafting, batchnorm on batch statistics without recording them; the parameters
    are frozen meanwhile, so the attack adds nothing to their gradients). Each step gives the
    samples fresh ids (row ``r`` of the global batch at step ``k`` is ``k * batch + r``, on
    however many processes), so random starts differ from step to step and stay
    reproducible.
    ``target`` is passed to targeted attacks (e.g. ``"random"`` for JSMA).
    """

    def __init__(
        self,
        attack: FixedBudgetAttack,
        alpha: float = 0.5,
        bounds: tuple[float, float] = (0.0, 1.0),
        mode: Mode = "train",
        target: TargetSpec = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(attack, FixedBudgetAttack):
            raise InputError(
                f"adversarial training needs a fixed-budget attack (FGSM, PGD, JSMA, ...), got "
                f"{type(attack).__name__}"
            )
        if attack.eps is None:
            raise InputError(f"{attack.name} needs a budget eps for adversarial training")
        super().__init__(float(attack.eps), alpha, bounds)
        self.attack, self.mode, self.target = attack, mode, target
        self.name = name or attack.name.lower()
        self._steps = 0

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        clf = self.classifier(model)
        clf.mode = self.mode
        first, total = batch_rows(len(x))
        ids = torch.arange(first, first + len(x), device=x.device) + self._steps * total
        self._steps += 1
        return self.attack(clf, x, y, self.target, ids=ids).x_adv

    def _details(self) -> dict[str, Any]:
        target = self.target if self.target is None or isinstance(self.target, str) else "given"
        return {"attack": self.attack.config(), "mode": self.mode, "target": target}


class EnsembleTraining(MixedObjective):
    """Ensemble adversarial training: FGSM examples from the current model and static ones.

    Each batch is split among the sources in turn: the rows ``r`` (of the global batch, on
    however many processes) with
    ``(r + step) mod (S + 1) == 0`` get FGSM on the current weights (from the clean pass's
    gradient, as :class:`FGSMTraining`), the rows with remainder ``i`` get FGSM crafted on
    the static model ``i`` (in eval mode; it is never trained).
    """

    name = "ensemble"
    uses_clean_gradient: ClassVar[bool] = True

    def __init__(
        self,
        eps: float,
        static: Sequence[nn.Module],
        alpha: float = 0.5,
        bounds: tuple[float, float] = (0.0, 1.0),
        sources: Sequence[str] | None = None,
    ) -> None:
        super().__init__(eps, alpha, bounds)
        if not static or not all(isinstance(m, nn.Module) for m in static):
            raise InputError("ensemble training needs at least one static model (an nn.Module)")
        self.static = [m.eval() for m in static]
        self.sources = (
            list(sources) if sources is not None else [f"static {i}" for i in range(len(static))]
        )
        self._classifiers: list[Classifier] = []
        self._fgsm = FGSM(self.eps)
        self._steps = 0

    def check(self, model: nn.Module, x: Tensor, num_classes: int) -> None:
        """Every static model must take these inputs and give ``num_classes`` logits."""
        self._classifiers = []
        for source, module in zip(self.sources, self.static, strict=True):
            module.to(x.device)
            try:
                with torch.no_grad():
                    out = module(x)
            except RuntimeError as err:
                raise InputError(
                    f"static model {source} fails on inputs of shape {tuple(x.shape[1:])} (the "
                    f"model being trained takes them): {err}. Give static models trained on "
                    "the same data"
                ) from err
            if out.ndim != 2 or out.shape[1] != num_classes:
                raise InputError(
                    f"static model {source} returns {tuple(out.shape[1:])} outputs per input "
                    f"but the model being trained has {num_classes} classes; give static "
                    "models trained on the same classes"
                )
            self._classifiers.append(Classifier(module, bounds=self.bounds, device=x.device))

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
        assert grad is not None
        if not self._classifiers:
            raise RuntimeError("EnsembleTraining.check must run before training")
        x_adv = x + self.eps * grad.sign()
        first, _ = batch_rows(len(x))
        place = torch.arange(first, first + len(x), device=x.device)
        source = (place + self._steps) % (len(self.static) + 1)
        self._steps += 1
        for i, clf in enumerate(self._classifiers, start=1):
            rows = (source == i).nonzero().squeeze(1)
            if len(rows):
                x_adv[rows] = self._fgsm(clf, x[rows], y[rows]).x_adv
        return x_adv

    def _details(self) -> dict[str, Any]:
        return {"static": self.sources}
