"""How far a classifier stands from the limit: Theorem 1's bound beside its measured robustness.

For a classifier f and a generator g (x = g(z), z ~ N(0, I_d)), :func:`analyse` estimates

- the class probabilities P(f(g(z)) = i) on ``n_samples`` generated samples, with
  simultaneous Clopper-Pearson intervals (:func:`~.theorems.class_probabilities`);
- the Lipschitz constant L of g (:func:`brittle.generators.estimate_lipschitz`);
- the upper bounds on robustness at the quantile q (default the median): the smallest eta
  at which Theorem 1's lower bound on P(r <= eta) reaches q, in latent space (omega the
  identity: a bound on r_Z) and in image space (omega(t) = L t: a bound on r_in, hence on
  r_unc <= r_in), at the point estimate of the probabilities and, conservatively, at the
  worst probabilities of their confidence box;
- r_Z, r_in and r_unc on ``n`` generated samples (:func:`~.robustness.estimate_all`);

raw and normalised (r_Z and its bound by the mean ||z||, the others by the mean ||x|| of the
same samples), and the order the theory predicts: r_unc <= r_in, and the measured quantile
below its bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from brittle.attacks.base import DEFAULT_BATCH_SIZE
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.generators import Generator, estimate_lipschitz
from brittle.validation import check_positive_integer, is_real

from .estimate import RobustnessEstimate
from .inputs import check_pair
from .latent import sample_latents
from .robustness import RobustnessEstimates, estimate_all
from .theorems import (
    ClassProbabilities,
    class_probabilities,
    robustness_upper_bound,
    robustness_upper_bound_interval,
)

DEFAULT_SAMPLES = 10_000
"""Generated samples that estimate the class probabilities (the issue asks for at least
10,000)."""


@dataclass(frozen=True)
class Bound:
    """The bound on robustness at a quantile: raw, normalised and conservative (at the worst
    probabilities of the confidence box; ``inf`` when that box cannot reach the quantile)."""

    raw: float
    normalised: float
    conservative: float
    scale: float

    def as_json(self) -> dict[str, float | None]:
        return {
            "raw": _finite(self.raw),
            "normalised": _finite(self.normalised),
            "conservative": _finite(self.conservative),
            "conservative_normalised": _finite(self.conservative / self.scale),
            "scale": self.scale,
        }


@dataclass(frozen=True)
class BoundAnalysis:
    """Theorem 1's bounds and the measured robustness of one classifier on one generator."""

    probabilities: ClassProbabilities
    lipschitz: float
    lipschitz_method: dict[str, Any]
    quantile: float
    bound_latent: Bound
    bound_input: Bound
    estimates: RobustnessEstimates

    @property
    def checks(self) -> dict[str, bool]:
        """The order the theory predicts, on these samples."""
        q = self.quantile
        est = self.estimates
        unc, ind = est.unconstrained.values.cpu(), est.in_distribution.values.cpu()
        return {
            "r_unc <= r_in on every sample": bool((unc <= ind * (1 + 1e-6)).all()),
            "quantile of r_Z <= its bound": _quantile(est.latent, q) <= self.bound_latent.raw,
            "quantile of r_in <= its bound": _quantile(est.in_distribution, q)
            <= self.bound_input.raw,
            "quantile of r_unc <= its bound": _quantile(est.unconstrained, q)
            <= self.bound_input.raw,
        }

    def as_json(self) -> dict[str, Any]:
        """The figures ``brittle bound --json`` writes (inf as ``None``)."""
        est = self.estimates
        return {
            "quantile": self.quantile,
            "class_probabilities": self.probabilities.as_dict(),
            "lipschitz": self.lipschitz,
            "lipschitz_method": self.lipschitz_method,
            "bound_latent_median": self.bound_latent.as_json(),
            "bound_input_median": self.bound_input.as_json(),
            "median_r_z": _median(est.latent),
            "median_r_in": _median(est.in_distribution),
            "median_r_unc": _median(est.unconstrained),
            "robustness": est.as_json(),
            "checks": self.checks,
        }


def generated_predictions(
    classifier: Classifier, generator: nn.Module, n: int, seed: int, batch_size: int = 1024
) -> torch.Tensor:
    """f(g(z)) for ``n`` latent draws z ~ N(0, I) made with ``seed`` (eval mode, no grad)."""
    d, _ = check_pair(classifier, generator)
    z = sample_latents(n, d, seed)
    out = []
    with torch.no_grad():
        for part in z.split(batch_size):
            images = generator(part.to(classifier.device))
            out.append(classifier.predict(images, batch_size))
    return torch.cat(out)


def bound_inputs(
    classifier: Classifier,
    generator: Generator,
    n_samples: int,
    confidence: float,
    lipschitz: float | None,
    seed: int,
) -> tuple[ClassProbabilities, float, dict[str, Any]]:
    """What Theorem 1 needs: the class probabilities of ``classifier`` on ``n_samples``
    generated inputs (drawn with ``seed + 1``) with their confidence box, and L of the
    generator with how it was found (given, or :func:`~brittle.generators.estimate_lipschitz`)."""
    predictions = generated_predictions(classifier, generator, n_samples, seed + 1)
    num_classes = classifier.num_classes or int(predictions.max()) + 1
    probs = class_probabilities(predictions.cpu().numpy(), num_classes, confidence)
    if lipschitz is not None:
        return probs, float(lipschitz), {"given": float(lipschitz)}
    found = estimate_lipschitz(generator, seed=seed)
    return probs, float(found.lipschitz), found.as_json()


def analyse(
    classifier: Classifier,
    generator: Generator,
    *,
    n: int = 500,
    n_samples: int = DEFAULT_SAMPLES,
    quantile: float = 0.5,
    confidence: float = 0.95,
    lipschitz: float | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> BoundAnalysis:
    """The bounds of Theorem 1 at ``quantile`` and r_Z, r_in, r_unc on ``n`` samples.

    ``lipschitz`` is L of the generator when known; by default it is estimated
    (:func:`brittle.generators.estimate_lipschitz`). The class probabilities come from
    ``n_samples`` draws made with ``seed + 1`` (other draws than the robustness samples').
    """
    if not is_real(quantile) or not 0 < quantile < 1:
        raise InputError(f"the quantile must be in (0, 1), got {quantile!r} (the median: 0.5)")
    check_positive_integer(n_samples, "n_samples")
    probs, lipschitz, method = bound_inputs(
        classifier, generator, n_samples, confidence, lipschitz, seed
    )
    estimates = estimate_all(classifier, generator, n, seed, batch_size=batch_size)
    return BoundAnalysis(
        probabilities=probs,
        lipschitz=float(lipschitz),
        lipschitz_method=method,
        quantile=quantile,
        bound_latent=_bound(probs, quantile, None, estimates.latent.scale),
        bound_input=_bound(probs, quantile, float(lipschitz), estimates.in_distribution.scale),
        estimates=estimates,
    )


def _bound(probs: ClassProbabilities, q: float, lipschitz: float | None, scale: float) -> Bound:
    raw = robustness_upper_bound(q, probs, lipschitz)
    conservative = robustness_upper_bound_interval(q, probs, lipschitz)
    return Bound(raw=raw, normalised=raw / scale, conservative=conservative, scale=scale)


def _quantile(estimate: RobustnessEstimate, q: float) -> float:
    values = estimate.values.cpu().double().numpy()
    return float(np.quantile(values, q, method="lower"))


def _median(estimate: RobustnessEstimate) -> dict[str, float | None]:
    return {"raw": _finite(estimate.median), "normalised": _finite(estimate.normalised_median)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
