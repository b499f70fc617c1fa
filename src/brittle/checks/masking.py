"""A gradient-masking check: is the model robust, or only robust to the softmax's gradient?

A defence can make a model look robust by breaking the gradient that attacks follow rather
than by moving its decision boundary (Athalye, Carlini & Wagner 2018, "Obfuscated gradients
give a false sense of security"). Defensive distillation is the textbook case (Carlini &
Wagner 2016, "Defensive distillation is not robust to adversarial examples"): trained at
temperature T and deployed at T = 1, its logits are about T times larger, the softmax
saturates, and the cross-entropy gradient

    grad_x J(theta, x, y),   J = -log softmax(z(x))_y,   dJ/dz = softmax(z) - onehot(y),

underflows to exactly 0 in float32 for confidently classified inputs. FGSM, which steps along
its sign, then does not move; yet the logits z still depend on x, and an attack on the logit
margin max_{j != y} z_j - z_y (C&W's loss) succeeds as on the undefended model.

:func:`gradient_masking_check` measures, on the given samples:

- the input gradient of J per sample: its L1 and L2 norms, their medians, and the share of
  samples whose gradient has vanished (L1 norm <= :data:`VANISHING_GRADIENT`: exactly zero,
  or too small for its direction to mean anything), over the correctly classified samples
  (those an attack has to move);
- robust accuracy (correct before and after the attack, over all samples) under FGSM and
  PGD on the cross-entropy, the attacks that follow the softmax's gradient, and under PGD on
  the logit margin, which does not.

It warns when the model looks robust only to the softmax-gradient attacks, each with its
numbers: the margin attack's robust accuracy is :data:`GAP_THRESHOLD` or more below that of
PGD on the cross-entropy (the softmax hides the gradient); FGSM's is that much above PGD's
on the same loss (iterative attacks must be at least as strong as a single step, Athalye
et al.'s first check; single-step adversarial training fails it, Tramer et al. 2018); or the
gradient vanishes on :data:`VANISHING_SHARE` or more of the correctly classified samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.attacks import FGSM, PGD, Attack
from brittle.attacks.base import DEFAULT_BATCH_SIZE, check_ids
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.threat import Capability, Norm
from brittle.validation import check_positive_integer

GAP_THRESHOLD = 0.10
"""Warn when PGD on the logit margin leaves robust accuracy this much (10 percentage points)
or more below FGSM or PGD on the cross-entropy."""
VANISHING_GRADIENT = 1e-12
"""A sample's cross-entropy gradient has vanished when its L1 norm is at most this."""
VANISHING_SHARE = 0.5
"""Warn when the gradient has vanished on this share or more of the correctly classified
samples."""
NORMS = FGSM.norms & PGD.norms
"""The norms the check works in: those of FGSM and PGD (Linf, L2, L1)."""
DEFAULT_STEPS = 20
"""PGD iterations of the check (alpha = 2.5 eps / steps)."""
_TOLERANCE = 1e-9
"""Slack on the gap's comparison with its threshold, for rounding."""
REFERENCES = (
    "Athalye, Carlini & Wagner 2018, Obfuscated gradients give a false sense of security; "
    "Carlini & Wagner 2016, Defensive distillation is not robust to adversarial examples"
)


@dataclass(frozen=True)
class MaskingCheck:
    """The numbers of a gradient-masking check and the warnings they raise.

    Robust accuracies are over all ``n`` samples; the gradient statistics over the correctly
    classified ones (NaN when there are none). ``grad_l1`` and ``grad_l2`` hold each sample's
    norms of grad_x J (all samples, in input order).
    """

    norm: str
    eps: float
    steps: int
    n: int
    clean_accuracy: float
    robust_fgsm: float
    robust_pgd_ce: float
    robust_pgd_margin: float
    median_grad_l1: float
    median_grad_l2: float
    vanishing_share: float
    warnings: list[str]
    grad_l1: Tensor = field(repr=False)
    grad_l2: Tensor = field(repr=False)

    @property
    def softmax_gap(self) -> float:
        """How far below PGD on the cross-entropy PGD on the margin leaves robust accuracy."""
        return self.robust_pgd_ce - self.robust_pgd_margin

    @property
    def single_step_gap(self) -> float:
        """How far above PGD on the same loss (the cross-entropy) FGSM leaves robust accuracy."""
        return self.robust_fgsm - self.robust_pgd_ce

    @property
    def gap(self) -> float:
        """The larger of :attr:`softmax_gap` and :attr:`single_step_gap`."""
        return max(self.softmax_gap, self.single_step_gap)

    @property
    def masked(self) -> bool:
        """Whether the check warned."""
        return bool(self.warnings)

    def as_json(self) -> dict[str, Any]:
        """The numbers, the thresholds and the warnings as plain JSON-ready data (no
        per-sample norms)."""
        return {
            "norm": self.norm,
            "eps": self.eps,
            "steps": self.steps,
            "n": self.n,
            "clean_accuracy": self.clean_accuracy,
            "robust_fgsm": self.robust_fgsm,
            "robust_pgd_ce": self.robust_pgd_ce,
            "robust_pgd_margin": self.robust_pgd_margin,
            "gap": self.gap,
            "softmax_gap": self.softmax_gap,
            "single_step_gap": self.single_step_gap,
            "gap_threshold": GAP_THRESHOLD,
            "median_grad_l1": self.median_grad_l1,
            "median_grad_l2": self.median_grad_l2,
            "vanishing_share": self.vanishing_share,
            "vanishing_gradient": VANISHING_GRADIENT,
            "vanishing_share_threshold": VANISHING_SHARE,
            "masked": self.masked,
            "warnings": list(self.warnings),
            "references": REFERENCES,
        }


def gradient_masking_check(
    classifier: Classifier,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str | Norm = "linf",
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ids: Tensor | None = None,
) -> MaskingCheck:
    """Check ``classifier`` for masked gradients on ``x`` (labels ``y``) at budget ``eps``.

    ``norm``: one of :data:`NORMS` (Linf, L2 or L1). ``steps``: PGD's iterations;
    ``seed`` and ``ids`` (each sample's id, default its index) seed PGD's random starts.
    Everything runs in batches of ``batch_size``. See the module docstring for what is
    measured and when it warns.
    """
    check_positive_integer(batch_size, "batch_size")
    x = classifier.check_inputs(x)
    if not len(x):
        raise InputError("the gradient-masking check needs at least one sample")
    y = classifier.check_labels(y, len(x))
    ids = check_ids(ids, len(x), x.device)
    chosen = Norm.parse(norm)
    l1, l2 = input_gradient_norms(classifier, x, y, batch_size)
    attacks = {
        "fgsm": FGSM(eps, norm=chosen),
        "pgd_ce": PGD(eps, steps=steps, norm=chosen, seed=seed),
        "pgd_margin": PGD(eps, steps=steps, norm=chosen, loss="margin", seed=seed),
    }
    robust = {k: robust_under(a, classifier, x, y, ids, batch_size) for k, a in attacks.items()}
    correct = classifier.predict(x, batch_size) == y
    vanished = l1[correct] <= VANISHING_GRADIENT
    check = MaskingCheck(
        norm=chosen.value,
        eps=float(eps),
        steps=steps,
        n=len(x),
        clean_accuracy=float(correct.double().mean()),
        robust_fgsm=float(robust["fgsm"].double().mean()),
        robust_pgd_ce=float(robust["pgd_ce"].double().mean()),
        robust_pgd_margin=float(robust["pgd_margin"].double().mean()),
        median_grad_l1=_median(l1[correct]),
        median_grad_l2=_median(l2[correct]),
        vanishing_share=float(vanished.double().mean()) if len(vanished) else math.nan,
        warnings=[],
        grad_l1=l1,
        grad_l2=l2,
    )
    return replace(check, warnings=masking_warnings(check))


def input_gradient_norms(
    classifier: Classifier, x: Tensor, y: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """Per-sample L1 and L2 norms of grad_x J(theta, x, y), J the cross-entropy of the
    logits, in eval mode and batches (the loss is summed, so no sample's gradient is scaled
    by the batch size)."""
    access = ModelAccess(classifier, Capability.WHITE_BOX, len(x), "gradient_masking_check")
    l1, l2 = [], []
    with classifier.evaluation():
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            grad, _ = access.loss_gradient(xb, yb, "ce")
            flat = grad.flatten(1)
            l1.append(flat.norm(p=1, dim=1))
            l2.append(flat.norm(p=2, dim=1))
    return torch.cat(l1), torch.cat(l2)


def robust_under(
    attack: Attack, classifier: Classifier, x: Tensor, y: Tensor, ids: Tensor, batch_size: int
) -> Tensor:
    """Per sample: correctly classified before and after ``attack`` (run in batches)."""
    parts = zip(x.split(batch_size), y.split(batch_size), ids.split(batch_size), strict=True)
    rows = [attack(classifier, xb, yb, ids=ib) for xb, yb, ib in parts]
    return torch.cat([r.robust for r in rows])


def masking_warnings(check: MaskingCheck) -> list[str]:
    """The check's warnings for its numbers (see the module docstring); empty when none."""
    warnings = []
    numbers = (
        f"at eps={check.eps:g} ({check.norm}) robust accuracy is {check.robust_fgsm:.1%} "
        f"under FGSM, {check.robust_pgd_ce:.1%} under PGD on the cross-entropy and "
        f"{check.robust_pgd_margin:.1%} under PGD on the logit margin ({check.steps} steps, "
        f"{check.n} samples)"
    )
    threshold = GAP_THRESHOLD - _TOLERANCE
    if check.softmax_gap >= threshold:
        warnings.append(
            f"gradient masking suspected: {numbers}: the margin attack leaves "
            f"{100 * check.softmax_gap:.1f} points less "
            f"(threshold {100 * GAP_THRESHOLD:.0f}). The model resists the softmax's "
            "gradient, not adversarial examples (Athalye et al. 2018): read its robustness "
            "from attacks on the logits (pgd with loss=margin, cw), not from FGSM."
        )
    if check.single_step_gap >= threshold:
        warnings.append(
            f"gradient masking suspected: {numbers}: the single step leaves "
            f"{100 * check.single_step_gap:.1f} points more than PGD on the same loss "
            f"(threshold {100 * GAP_THRESHOLD:.0f}). The loss is not linear around the "
            "inputs, so one gradient step misses adversarial examples that iterating finds "
            "(single-step adversarial training masks its gradient so: Tramer et al. 2018); "
            "read the model's robustness from iterative attacks (pgd), not from FGSM."
        )
    if check.vanishing_share >= VANISHING_SHARE:
        warnings.append(
            f"the cross-entropy gradient vanishes (L1 norm <= {VANISHING_GRADIENT:g}) on "
            f"{check.vanishing_share:.1%} of the correctly classified samples (threshold "
            f"{VANISHING_SHARE:.0%}; median L1 {check.median_grad_l1:.3g}, median L2 "
            f"{check.median_grad_l2:.3g}): the softmax saturates, as with defensive "
            "distillation (Carlini & Wagner 2016), so FGSM and PGD on the cross-entropy "
            "have no direction to follow. Attack the logits instead (pgd with loss=margin, "
            "cw)."
        )
    return warnings


def _median(values: Tensor) -> float:
    return float(values.median()) if len(values) else math.nan
