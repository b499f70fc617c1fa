"""Sanity checks that query the model, on the first samples of an evaluation.

Athalye, Carlini & Wagner (2018, section 6) and Croce & Hein (2020) name the signs of an
evaluation that measures a masked gradient, not robustness. Each is a
:class:`~brittle.checks.sweep.SanityCheck` here, run on the first :data:`PROBE_SAMPLES` samples
and compared with the evaluation's per-sample worst case on the same samples:

- **iterative vs single step**: FGSM at each budget must not leave fewer samples robust than
  the evaluation's attacks (an iterative attack can take FGSM's step first);
- **unbounded budget**: the attacks at the box's diameter, where every input of the box is
  allowed and so every sample can be misclassified, must succeed on all of them;
- **random noise**: :data:`NOISE_DRAWS` uniform draws from the ball of the largest budget must
  not leave fewer samples robust than the attacks;
- **gradients**: the input gradient of the cross-entropy is finite, and vanishes on fewer
  than :data:`VANISHING_SHARE` of the correctly classified samples;
- **randomised model**: two forward passes on the same inputs give the same outputs (else
  one gradient is one draw: the attack needs expectation over transformation, which the
  evaluation turns on, :mod:`brittle.eot`);
- **black box vs white box**: a gradient-free attack of the evaluation breaks no sample that
  every gradient attack left standing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from brittle.attacks import FGSM
from brittle.attacks.base import DEFAULT_BATCH_SIZE
from brittle.attacks.iterative import random_offset
from brittle.checks.masking import VANISHING_GRADIENT, VANISHING_SHARE, input_gradient_norms
from brittle.checks.outcome import NOT_RUN, PASSED, WARNING, SanityCheck
from brittle.classifier import Classifier
from brittle.eot import RANDOMNESS_TOLERANCE, outputs_differ
from brittle.eval.runner import Evaluation, run_attack
from brittle.eval.spec import AttackSpec
from brittle.model import Model
from brittle.perturbation import box_diameter, clip
from brittle.randomness import per_sample
from brittle.threat import Capability, Goal, Norm

_NO_GRADIENTS = "the model is an oracle: it gives no gradients to check or to attack with"
PROBE_SAMPLES = 500
"""How many samples (the first ones) the checks that query the model run on."""
NOISE_DRAWS = 10
"""Random draws per sample of the noise check."""


def labels(model: Model, x: Tensor) -> Tensor:
    """The model's predictions on ``x`` (on the CPU)."""
    if isinstance(model, Classifier):
        return model.predict(x).cpu()
    return model.predict_scores(x).argmax(1).cpu()


@dataclass(frozen=True)
class Probe:
    """What the checks run on: the model, the first samples, the evaluation's plans and
    goal, the norm, the seed and the batch size."""

    classifier: Model
    x: Tensor
    y: Tensor
    ids: Tensor
    plans: Sequence[AttackSpec]
    goal: Goal
    norm: Norm
    seed: int
    batch_size: int

    @cached_property
    def correct(self) -> Tensor:
        """Which of these samples the model classifies correctly (on the CPU)."""
        return labels(self.classifier, self.x) == self.y.cpu()

    def robust(self, evaluation: Evaluation, i: int) -> Tensor:
        """The evaluation's worst case at ``eps[i]`` on these samples: robust or not."""
        return evaluation.worst[i].robust[: len(self.x)].cpu()


def probe_checks(
    classifier: Model,
    evaluation: Evaluation,
    plans: Sequence[AttackSpec],
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    *,
    goal: Goal,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[SanityCheck]:
    """The checks above for ``evaluation`` of ``plans`` on ``x`` (the evaluated samples in
    its order, labels ``y``, ids ``ids``) under ``goal``; each on the first samples."""
    k = min(len(x), PROBE_SAMPLES)
    probe = Probe(
        classifier,
        x[:k],
        y[:k],
        ids[:k],
        plans,
        goal,
        Norm(evaluation.norm),
        seed,
        batch_size,
    )
    return [
        single_step_check(probe, evaluation),
        unbounded_check(probe),
        noise_check(probe, evaluation),
        gradient_check(probe),
        randomness_check(probe),
        black_box_check(evaluation, plans),
    ]


def single_step_check(probe: Probe, evaluation: Evaluation) -> SanityCheck:
    """FGSM leaves at least as many of the probe's samples robust as the evaluation."""
    name, title = "single_step", "Iterative attacks at least as strong as single-step FGSM"
    if probe.goal is not Goal.UNTARGETED or probe.norm not in FGSM.norms:
        return SanityCheck(
            name,
            title,
            NOT_RUN,
            f"FGSM is compared under an untargeted goal in {', '.join(sorted(n.value for n in FGSM.norms))}; "
            f"this evaluation is {probe.goal.value} in {probe.norm.value}",
        )
    if probe.classifier.capability < Capability.WHITE_BOX:
        return SanityCheck(name, title, NOT_RUN, _NO_GRADIENTS)
    if all(plan.spec.get("name") == FGSM.name for plan in probe.plans):
        return SanityCheck(name, title, NOT_RUN, "the evaluation's only attack is FGSM itself")
    if all(p.build(evaluation.eps[0]).capability < Capability.WHITE_BOX for p in probe.plans):
        return SanityCheck(
            name,
            title,
            NOT_RUN,
            "the evaluation's attacks use no gradient: FGSM has more access than they do, so "
            "its finding more says nothing about them (the black-box check compares them)",
        )
    fgsm, attacks = [], []
    for i, eps in enumerate(evaluation.eps):
        result = run_attack(
            probe.classifier,
            FGSM(eps, probe.norm),
            probe.x,
            probe.y,
            batch_size=probe.batch_size,
            ids=probe.ids,
            progress=False,
        )
        fgsm.append(int(result.robust.sum()))
        attacks.append(int(probe.robust(evaluation, i).sum()))
    numbers = {"n": len(probe.x), "eps": evaluation.eps, "robust_fgsm": fgsm, "robust": attacks}
    worse = [(e, f, a) for e, f, a in zip(evaluation.eps, fgsm, attacks, strict=True) if f < a]
    if not worse:
        return SanityCheck(
            name,
            title,
            PASSED,
            f"on the first {len(probe.x)} samples FGSM leaves at least as many robust as the "
            "evaluation's attacks at every eps",
            numbers,
        )
    e, f, a = worse[0]
    return SanityCheck(
        name,
        title,
        WARNING,
        f"at eps={e:g} FGSM leaves {f} of the first {len(probe.x)} samples robust, the "
        f"evaluation's attacks {a}: a single step finds adversarial examples the iterative "
        "attacks miss, the mark of a masked or noisy gradient (or of too small a step size). "
        "Do not trust the evaluation's robust accuracy; try more restarts, the standard "
        "suite, or a gradient-free attack.",
        numbers,
    )


def unbounded_check(probe: Probe) -> SanityCheck:
    """The evaluation's attacks at the box's diameter succeed, between them, on every
    correctly classified sample of the probe (each attack on those the earlier ones did not
    break)."""
    name, title = "unbounded", "Success reaches 100% as eps grows (at the box's diameter)"
    low, high = probe.classifier.envelope()
    diameter = box_diameter(probe.norm, (low, high), probe.x[0].numel())
    correct = probe.correct
    done = ~correct
    first_by: dict[str, int] = {}
    for plan in probe.plans:
        rows = torch.nonzero(~done).flatten()
        if not len(rows):
            break
        target = (
            plan.target[: len(probe.x)][rows] if isinstance(plan.target, Tensor) else plan.target
        )
        result = run_attack(
            probe.classifier,
            plan.build(diameter),
            probe.x[rows],
            probe.y[rows],
            batch_size=probe.batch_size,
            target=target,
            eps=diameter,
            ids=probe.ids[rows],
            progress=False,
        )
        won = result.success.cpu()
        first_by[plan.label] = int(won.sum())
        done[rows[won]] = True
    n_correct, succeeded = int(correct.sum()), int((done & correct).sum())
    labels = ", ".join(p.label for p in probe.plans)
    numbers = {
        "eps": diameter,
        "correct": n_correct,
        "succeeded": succeeded,
        "succeeded_first_by": first_by,
    }
    if succeeded == n_correct:
        return SanityCheck(
            name,
            title,
            PASSED,
            f"{labels} at eps={diameter:g}, where every input of the box is allowed, succeed "
            f"on all {n_correct} correctly classified samples of the first {len(probe.x)}",
            numbers,
        )
    return SanityCheck(
        name,
        title,
        WARNING,
        f"{labels} at eps={diameter:g}, where every input of the box is allowed, succeed on "
        f"only {succeeded} of the {n_correct} correctly classified samples of the first "
        f"{len(probe.x)}. Every one of them can be misclassified within that budget, so the "
        "attacks are too weak or the gradient is masked: their robust accuracy at smaller "
        "budgets overstates the model. Give them more steps or restarts, or use the standard "
        "suite.",
        numbers,
    )


def noise_check(probe: Probe, evaluation: Evaluation) -> SanityCheck:
    """Random noise in the ball of the largest budget leaves at least as many of the probe's
    samples robust as the evaluation's attacks."""
    name, title = "noise", "Random noise no stronger than the attacks"
    if probe.norm not in (Norm.LINF, Norm.L2, Norm.L1):
        return SanityCheck(
            name, title, NOT_RUN, f"random noise is drawn in linf, l2 or l1, not {probe.norm.value}"
        )
    eps = evaluation.eps[-1]
    shape = probe.x.shape[1:]
    bounds = probe.classifier.envelope()
    robust = probe.correct.clone()
    for draw in range(NOISE_DRAWS):
        offsets = per_sample(
            probe.seed, probe.ids, ("noise", draw), random_offset(probe.norm, shape.numel())
        )
        noisy = clip(probe.x + eps * offsets.to(probe.x).view_as(probe.x), bounds)
        robust &= labels(probe.classifier, noisy) == probe.y.cpu()
    attacks = probe.robust(evaluation, len(evaluation.eps) - 1)
    noise_only = int((attacks & ~robust).sum())
    numbers = {
        "n": len(probe.x),
        "eps": eps,
        "draws": NOISE_DRAWS,
        "robust_noise": int(robust.sum()),
        "robust": int(attacks.sum()),
        "broken_by_noise_only": noise_only,
    }
    if int(robust.sum()) >= int(attacks.sum()):
        return SanityCheck(
            name,
            title,
            PASSED,
            f"{NOISE_DRAWS} uniform draws from the ball at eps={eps:g} leave {int(robust.sum())} "
            f"of the first {len(probe.x)} samples robust, the attacks {int(attacks.sum())}",
            numbers,
        )
    return SanityCheck(
        name,
        title,
        WARNING,
        f"{NOISE_DRAWS} uniform draws from the ball at eps={eps:g} leave {int(robust.sum())} of "
        f"the first {len(probe.x)} samples robust, the attacks {int(attacks.sum())} (noise "
        f"alone breaks {noise_only} that the attacks left standing): random noise is stronger "
        "than the attacks, which therefore follow a useless gradient. The evaluation "
        "overstates robustness; use a gradient-free attack or the standard suite.",
        numbers,
    )


def gradient_check(probe: Probe) -> SanityCheck:
    """The cross-entropy's input gradient is finite, and vanishes on fewer than
    :data:`VANISHING_SHARE` of the probe's correctly classified samples."""
    name, title = "gradients", "Gradients finite and non-zero"
    if not isinstance(probe.classifier, Classifier):
        return SanityCheck(name, title, NOT_RUN, _NO_GRADIENTS)
    l1, _ = input_gradient_norms(probe.classifier, probe.x, probe.y, probe.batch_size)
    l1 = l1.cpu()
    correct = probe.correct
    nonfinite = int((~torch.isfinite(l1)).sum())
    vanished = int((correct & (l1 <= VANISHING_GRADIENT)).sum())
    n_correct = int(correct.sum())
    share = vanished / n_correct if n_correct else 0.0
    numbers = {
        "n": len(probe.x),
        "correct": n_correct,
        "nonfinite": nonfinite,
        "vanished": vanished,
        "vanishing_threshold": VANISHING_GRADIENT,
    }
    if nonfinite:
        return SanityCheck(
            name,
            title,
            WARNING,
            f"the input gradient of the cross-entropy is NaN or inf on {nonfinite} of the first "
            f"{len(probe.x)} samples: gradient attacks cannot follow it, and their failures "
            "say nothing of robustness. Fix the model's numerics (a log of 0, a division), or "
            "use a gradient-free attack.",
            numbers,
        )
    if n_correct and share >= VANISHING_SHARE:
        return SanityCheck(
            name,
            title,
            WARNING,
            f"the input gradient of the cross-entropy vanishes (L1 norm <= "
            f"{VANISHING_GRADIENT:g}) on {vanished} of the {n_correct} correctly classified "
            f"samples of the first {len(probe.x)}: a saturated softmax (distillation, a large "
            "temperature) hides the gradient. Attack the logits (APGD-T with DLR, C&W) or use "
            "the standard suite.",
            numbers,
        )
    return SanityCheck(
        name,
        title,
        PASSED,
        f"finite on all of the first {len(probe.x)} samples; vanishing on {vanished} of the "
        f"{n_correct} correctly classified",
        numbers,
    )


def randomness_check(probe: Probe) -> SanityCheck:
    """Two forward passes on the probe's inputs give the same logits (within
    :data:`~brittle.eot.RANDOMNESS_TOLERANCE`), or the model was attacked with EOT."""
    name, title = "deterministic", "Model deterministic (same outputs on two calls)"
    first = probe.classifier.predict_scores(probe.x)
    second = probe.classifier.predict_scores(probe.x)
    changed = int(outputs_differ(first, second).sum())
    flipped = int((first.argmax(1) != second.argmax(1)).sum())
    numbers: dict[str, object] = {
        "n": len(probe.x),
        "outputs_changed": changed,
        "predictions_changed": flipped,
        "tolerance": RANDOMNESS_TOLERANCE,
    }
    if not changed:
        return SanityCheck(
            name, title, PASSED, f"the same logits on all of the first {len(probe.x)}", numbers
        )
    eot = probe.classifier.eot
    if eot is not None and (eot.samples > 1 or eot.draws > 1):
        numbers["eot"] = eot.describe()
        return SanityCheck(
            name,
            title,
            PASSED,
            f"two calls on the same inputs give other logits on {changed} of the first "
            f"{len(probe.x)} samples ({flipped} change their prediction): the model is "
            "randomised, and was attacked with EOT (expectation over transformation, Athalye "
            f"et al. 2018): each gradient the mean of {eot.samples} draws, each verdict a "
            f"strict majority of {eot.draws} draws",
            numbers,
        )
    return SanityCheck(
        name,
        title,
        WARNING,
        f"two calls on the same inputs give other logits on {changed} of the first "
        f"{len(probe.x)} samples ({flipped} change their prediction): the model is randomised, "
        "so each gradient is one draw and the attacks (and the robust accuracy) see one draw "
        "per step. Attack the expectation over its randomness (EOT, Athalye et al. 2018) "
        "before trusting these numbers.",
        numbers,
    )


def black_box_check(evaluation: Evaluation, plans: Sequence[AttackSpec]) -> SanityCheck:
    """No attack of a weaker capability breaks a sample that every attack of the strongest
    capability in the evaluation left standing (Papernot et al. 2016's ordering: the white
    box above score queries above label queries). When one does, the stronger attacks are
    misled: for gradient attacks, gradient masking (Athalye et al. 2018)."""
    name, title = "black_box", "Stronger adversaries at least as strong as weaker ones"
    tiers = [p.build(evaluation.eps[0]).capability for p in plans]
    top = max(tiers)
    strong = [a for a, tier in enumerate(tiers) if tier == top]
    weak = [a for a in range(len(plans)) if a not in strong]
    if not weak:
        return SanityCheck(
            name,
            title,
            NOT_RUN,
            "needs attacks of two capabilities in the evaluation (the standard suite's white "
            "box has gradient and score-based ones)",
        )
    only = [
        int((case.broken[weak].any(dim=0) & ~case.broken[strong].any(dim=0)).sum())
        for case in evaluation.worst
    ]
    numbers = {
        "eps": evaluation.eps,
        "stronger": [plans[a].label for a in strong],
        "weaker": [plans[a].label for a in weak],
        "capability": top.name.lower(),
        "broken_by_weaker_only": only,
    }
    if not any(only):
        return SanityCheck(
            name,
            title,
            PASSED,
            f"the attacks below {top.name.lower()} break no sample that the "
            f"{top.name.lower()} attacks left standing",
            numbers,
        )
    i = next(i for i, c in enumerate(only) if c)
    why = (
        "the gradient misleads the white-box attacks (gradient masking). Read robustness from "
        "the worst case over all of them, and suspect the defence."
        if top >= Capability.WHITE_BOX
        else "the stronger attacks are weaker than their access allows here; read robustness "
        "from the worst case over all of them."
    )
    return SanityCheck(
        name,
        title,
        WARNING,
        f"at eps={evaluation.eps[i]:g} the attacks of weaker capability "
        f"({', '.join(plans[a].label for a in weak)}) break {only[i]} samples that every "
        f"{top.name.lower()} attack left standing: {why}",
        numbers,
    )
