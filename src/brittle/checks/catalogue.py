"""The catalogue of every flag brittle raises: its name, where it is decided, what must hold,
and what to do when it does not. The documentation's checks page is this table.

Three kinds: a **refusal** stops the work before any is spent (an error); a **sanity check**
is a line of the report, passed, a warning or not run (:class:`~.outcome.SanityCheck`); a
**warning** is a sentence in the report's warnings (or a Python warning), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["refusal", "sanity check", "warning"]


@dataclass(frozen=True)
class Flag:
    """One flag: ``name`` (the sanity check's id where it is one), ``kind``, ``home`` (the
    function that decides it, as ``module:function``), what ``holds`` when all is well, and
    the ``action`` to take when it does not."""

    name: str
    kind: Kind
    home: str
    holds: str
    action: str


FLAGS: tuple[Flag, ...] = (
    # ---------------------------------------------------------------- at the door
    Flag(
        "inputs",
        "refusal",
        "brittle.checks.inputs:check_inputs",
        "inputs are a floating-point batch of the model's input shape, finite, inside the box",
        "scale images to the box (x.float() / 255), fix the channel count or size, or pass "
        "bounds= to the model",
    ),
    Flag(
        "labels",
        "refusal",
        "brittle.checks.inputs:check_labels",
        "labels are integers, one per input, in [0, number of classes)",
        "pass class indices, not one-hot rows or names; check the data's classes match the model's",
    ),
    Flag(
        "implausible_classes",
        "warning",
        "brittle.checks.inputs:check_labels",
        "a model with 100 outputs or more sees labels that use a quarter of them or more",
        "check the model ends in one logit per class (not a feature extractor)",
    ),
    Flag(
        "logits",
        "refusal",
        "brittle.checks.outputs:check_logits",
        "the model returns finite logits, one row per input, as many columns as classes; not "
        "probabilities",
        "remove a final softmax, or declare outputs='probabilities'",
    ),
    Flag(
        "differentiable",
        "refusal",
        "brittle.checks.outputs:check_differentiable",
        "the outputs have an autograd graph back to the input",
        "remove detach(), numpy or argmax from forward; or use a black-box attack; or declare "
        "a non-differentiable preprocessing with preprocessing_backward (BPDA)",
    ),
    Flag(
        "input_gradient",
        "refusal",
        "brittle.checks.outputs:check_input_gradient",
        "the input gradient exists and is finite",
        "remove sqrt, log or division by zero inside forward",
    ),
    Flag(
        "oracle_answer",
        "refusal",
        "brittle.checks.outputs:check_oracle_answer",
        "an oracle returns n integer labels in range, or scores of shape (n, classes)",
        "fix the predict function's return value, or declare outputs= to match it",
    ),
    # ---------------------------------------------------------------- an evaluation's numbers
    Flag(
        "monotone",
        "sanity check",
        "brittle.checks.sweep:monotone_check",
        "robust accuracy never rises as eps grows",
        "use an iterative attack (PGD) or the standard suite; add steps",
    ),
    Flag(
        "finite_outputs",
        "sanity check",
        "brittle.checks.sweep:finite_outputs_check",
        "the model's outputs stay finite on every adversarial input",
        "fix the model's numerics (overflow, log of zero) before reading its robustness",
    ),
    Flag(
        "recorded_accuracy",
        "sanity check",
        "brittle.checks.sweep:recorded_accuracy_check",
        "the accuracy the model's file records lies at most 2 points above the interval of the "
        "measured clean accuracy",
        "check the preprocessing, the data split and the class order",
    ),
    Flag(
        "unbounded_failure",
        "warning",
        "brittle.checks.sweep:unbounded_failure_warnings",
        "a minimal attack without a binding budget breaks every correctly classified sample",
        "give the attack more steps (or larger lr / initial_const for C&W)",
    ),
    # ---------------------------------------------------------------- queries on the model
    Flag(
        "single_step",
        "sanity check",
        "brittle.checks.probes:single_step_check",
        "iterative attacks leave no more samples robust than single-step FGSM",
        "suspect gradient masking; attack the logit margin (pgd loss=margin, cw)",
    ),
    Flag(
        "unbounded",
        "sanity check",
        "brittle.checks.probes:unbounded_check",
        "the attacks at the box's diameter break every correctly classified sample",
        "the attacks are too weak as set or the gradient is masked: more steps, the suite",
    ),
    Flag(
        "noise",
        "sanity check",
        "brittle.checks.probes:noise_check",
        "random noise in the largest ball is no stronger than the attacks",
        "suspect gradient masking; use the suite's score-based attacks",
    ),
    Flag(
        "gradients",
        "sanity check",
        "brittle.checks.probes:gradient_check",
        "the input gradient is finite and vanishes on under half of the correct samples",
        "attack the logits (pgd loss=margin, cw), not the cross-entropy",
    ),
    Flag(
        "deterministic",
        "sanity check",
        "brittle.checks.probes:randomness_check",
        "two forward passes give the same outputs, or the model was attacked with EOT",
        "attack with expectation over transformation (--eot); fix the model's seeds",
    ),
    Flag(
        "black_box",
        "sanity check",
        "brittle.checks.probes:black_box_check",
        "no weaker adversary breaks a sample every stronger one left standing",
        "the stronger attacks are misled (gradient masking): trust the weaker attacks' "
        "numbers and investigate",
    ),
    # ---------------------------------------------------------------- a defended model
    Flag(
        "softmax_gap",
        "warning",
        "brittle.checks.masking:masking_warnings",
        "PGD on the logit margin leaves at most 10 points less robust than PGD on the "
        "cross-entropy",
        "read the defended model's robustness from attacks on the logits (pgd loss=margin, cw)",
    ),
    Flag(
        "single_step_gap",
        "warning",
        "brittle.checks.masking:masking_warnings",
        "FGSM leaves at most 10 points more robust than PGD on the same loss",
        "read the defended model's robustness from iterative attacks (pgd)",
    ),
    Flag(
        "vanishing_gradient",
        "warning",
        "brittle.checks.masking:masking_warnings",
        "the cross-entropy gradient vanishes on under half of the correct samples",
        "attack the logits (pgd loss=margin, cw): the softmax saturates",
    ),
    # ---------------------------------------------------------------- certificates
    Flag(
        "certified_within_attacked",
        "sanity check",
        "brittle.certify.sandwich:sandwich_check",
        "no certified radius exceeds the smallest perturbation an attack found",
        "a bug in the certificate or the attack: report it with the run's store",
    ),
)
"""Every flag, grouped by where it is raised: the door, an evaluation's numbers, the queries
on the model, a defended model, certificates."""
