"""Randomised models: expectation over transformation (EOT) for the gradients, and a verdict
over several draws.

A model whose outputs vary between calls on the same input (dropout at test time, a random
input transform, added noise) is a distribution of classifiers ``f_r``, ``r ~ R``. One
gradient is one draw: an attack that follows it follows the noise. EOT (Athalye, Engstrom,
Ilyas & Kwok 2018; Athalye, Carlini & Wagner 2018, section 4.2) ascends the expected loss
instead, estimated with ``k`` independent draws:

    grad_x E_r[L(f_r(x), y)] = E_r[grad_x L(f_r(x), y)] ~ (1/k) sum_{j=1..k} grad_x L(f_{r_j}(x), y)

AutoAttack's ``rand`` version runs APGD-CE and APGD-DLR with ``eot_iter=20``.

In brittle the setting belongs to the model, not to an attack: ``model.eot = EOT(...)``
(:func:`use_eot_if_randomised` sets it when two passes on the same inputs differ). Then

- every gradient an attack asks the access layer for (:meth:`ModelAccess.loss_gradient
  <brittle.access.ModelAccess.loss_gradient>`, ``vjp`` and ``jacobian``) is the mean of
  ``samples`` draws, each a forward and a backward pass, counted as ``samples`` queries and
  ``samples`` gradients per sample (``samples`` times the vectors for a ``vjp``); the logits
  it returns are the mean of the draws' logits. Score and label queries stay one draw each;
- the attack base judges every returned input, and the clean input, over ``draws`` forward
  passes (:func:`verdict_scores`): a sample is fooled only when the goal is met on a strict
  majority of them, and correctly classified only when a strict majority predicts its label;
- the model's draws inside an attack come from torch's global generators seeded from the
  attack's seed (:func:`model_randomness`), so the same call gives the same result.

Why a majority of draws. AutoAttack judges each attack by one forward pass: an input that the
model misclassifies one time in five then counts as fooled one time in five, and a model
that adds noise looks broken by the noise alone: success is overstated. Asking every draw
to be fooled overstates robustness instead: with enough draws no input of a noisy model is
ever fooled on all of them. The majority asks whether the model misclassifies the input more
often than not; with more draws it converges to ``P_r[goal met at x] > 1/2``, the verdict of
the model's majority vote. An odd number of draws leaves no tie (a tie is not a success).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from brittle.randomness import Stream, philox_key
from brittle.validation import check_positive_integer

if TYPE_CHECKING:
    from brittle.model import Model

RANDOMNESS_TOLERANCE = 1e-4
"""Two passes differ when a logit moves by more than this times (1 + its magnitude)."""
DEFAULT_SAMPLES = 20
"""Draws per gradient (AutoAttack's ``eot_iter`` of its ``rand`` version)."""
DEFAULT_DRAWS = 9
"""Forward passes a verdict is judged on (odd: no tie)."""


@dataclass(frozen=True)
class EOT:
    """How a randomised model is attacked and judged.

    ``samples``: draws averaged per gradient (``k``, counted in the gradients and queries
    spent). ``draws``: forward passes each verdict (clean and adversarial) is judged on, a
    strict majority deciding. ``EOT(1, 1)`` attacks and judges the model as deterministic
    (and keeps :func:`use_eot_if_randomised` from changing it).
    """

    samples: int = DEFAULT_SAMPLES
    draws: int = DEFAULT_DRAWS

    def __post_init__(self) -> None:
        for name in ("samples", "draws"):
            check_positive_integer(getattr(self, name), f"EOT {name}")

    def describe(self) -> dict[str, int | str]:
        """The setting as a report states it."""
        return {
            "samples_per_gradient": self.samples,
            "verdict_draws": self.draws,
            "verdict": "goal met on a strict majority of the draws",
        }


def outputs_differ(first: Tensor, second: Tensor) -> Tensor:
    """Per sample: does some output of two passes on the same input differ by more than
    :data:`RANDOMNESS_TOLERANCE` times (1 + its magnitude)?"""
    moved = (first - second).abs() > RANDOMNESS_TOLERANCE * (1 + first.abs())
    return moved.any(dim=1)


def use_eot_if_randomised(model: Model, x: Tensor, settings: EOT | None = None) -> EOT | None:
    """Set ``model.eot`` to ``settings`` (default :class:`EOT`) when two forward passes on
    ``x`` give other outputs on some sample; return ``model.eot``.

    A setting already on the model is kept (``EOT(1, 1)`` keeps a randomised model attacked
    as deterministic). The passes are the attack base's uncounted ones
    (:meth:`~brittle.model.Model.predict_scores`: a classifier in eval mode), so randomness
    that only ``mode="train"`` switches on is not what this detects.
    """
    if model.eot is not None or not len(x):
        return model.eot
    x = model.check_inputs(x)
    first, second = model.predict_scores(x), model.predict_scores(x)
    if bool(outputs_differ(first, second).any()):
        model.eot = settings if settings is not None else EOT()
    return model.eot


def gradient_draws(model: Model) -> int:
    """How many draws each gradient of ``model`` averages (1 without EOT)."""
    return 1 if model.eot is None else model.eot.samples


def verdict_scores(model: Model, x: Tensor, met: Callable[[Tensor], Tensor]) -> tuple[Tensor, int]:
    """The scores a verdict on ``x`` is read from, and the forward passes it took.

    Without EOT: one pass of :meth:`~brittle.model.Model.predict_scores`. With EOT:
    ``model.eot.draws`` passes; ``met(scores)`` says per sample whether a draw meets the
    verdict's goal, the goal counts as met when a strict majority of the draws meet it, and
    each sample's scores are those of its first draw that agrees with the majority, so that
    anything read from them (the prediction, the criterion's verdict, the confidence) is one
    draw's and agrees with the majority.
    """
    draws = 1 if model.eot is None else model.eot.draws
    if draws == 1:
        return model.predict_scores(x), 1
    scores = torch.stack([model.predict_scores(x) for _ in range(draws)])
    hits = torch.stack([met(s) for s in scores])
    majority = 2 * hits.sum(0) > draws
    first = (hits == majority).to(torch.uint8).argmax(0)
    return scores[first, torch.arange(len(x), device=scores.device)], draws


def misclassified(y: Tensor) -> Callable[[Tensor], Tensor]:
    """The clean verdict's goal: the scores do not predict ``y`` (a non-finite row never
    does)."""

    def met(scores: Tensor) -> Tensor:
        return ~torch.isfinite(scores).all(1) | (scores.argmax(1) != y)

    return met


@contextmanager
def model_randomness(model: Model, seed: int, stream: Stream) -> Iterator[None]:
    """Inside, for a randomised model (``model.eot`` set), torch's default generators of the
    CPU and of the model's CUDA device seeded from ``(seed, stream)``; their states are
    given back on exit. A model that draws from them (dropout, ``torch.randn`` without a
    generator) then draws the same numbers on the same batch every time. Nothing changes
    for a model without EOT.

    The draws of a model's own randomness are the model's: they depend on the batch it is
    given (its size and its samples), so results are deterministic for a seed and a batch,
    not independent of the batch size.
    """
    if model.eot is None:
        yield
        return
    cuda = model.device.type == "cuda"
    high, low = philox_key(seed, stream)
    value = (high << 32) | low
    with torch.random.fork_rng(devices=[model.device] if cuda else []):
        torch.random.default_generator.manual_seed(value)
        if cuda:
            with torch.cuda.device(model.device):
                torch.cuda.manual_seed(value)
        yield
