"""Adversarial distance and robustness of Papernot et al. 2016 (section 5.3), from the JSMA
saliency map at the clean input."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.attacks.base import DEFAULT_BATCH_SIZE
from brittle.attacks.jsma import saliency_map, saliency_terms
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.metrics.papernot2016.source_target import to_numpy
from brittle.threat import Capability
from brittle.validation import check_positive_integer


def adversarial_distance(
    classifier: Classifier,
    x: Any,
    target: Any,
    increase: bool = True,
    use_logits: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tensor:
    """Adversarial distance of each input to its target class (Papernot 2016, equation 11):

        A(X, t) = 1 - (1/M) * sum_i 1[S(X, t)[i] > 0]

    with M the number of features and S the JSMA saliency map at X for target t, from
    alpha_i = dF_t/dX_i and beta_i = sum_{j != t} dF_j/dX_i (``increase``):

        S[i] = 0 if alpha_i < 0 or beta_i > 0, else alpha_i * |beta_i|

    (decreasing features, ``increase=False``: S[i] = 0 if alpha_i > 0 or beta_i < 0, else
    |alpha_i| * beta_i). F is the logits (``use_logits``) or the softmax probabilities. A is
    the share of features that cannot push X towards t: close to 1, t is far. ``x`` is
    ``(N, ...)`` in the classifier's box, ``target`` ``(N,)`` class indices. Computed in
    batches of ``batch_size`` in eval mode, with two vector-Jacobian products per sample.
    Returns ``(N,)`` float64 on the CPU.
    """
    if not isinstance(classifier, Classifier):
        raise InputError(
            "adversarial distance needs the gradients of a brittle.Classifier, got "
            f"{type(classifier).__name__}; wrap the module with brittle.Classifier(module)"
        )
    check_positive_integer(batch_size, "batch_size")
    xs = classifier.check_inputs(x)
    if not len(xs):
        raise InputError("x is empty: pass at least one input")
    classifier.check_outputs(xs)
    t = classifier.check_labels(target, len(xs), "target")
    n, m = len(xs), xs[0].numel()
    access = ModelAccess(classifier, Capability.WHITE_BOX, n, "adversarial distance")
    of = "logits" if use_logits else "probabilities"
    counts = []
    with classifier.evaluation():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=xs.device)
            alpha, beta, _ = saliency_terms(access, xs[idx], t[idx], idx, of)
            counts.append((saliency_map(alpha, beta, increase) > 0).sum(1))
    valid = torch.cat(counts).cpu().to(torch.float64)
    return 1.0 - valid / m


def robustness(distances: Any) -> float:
    """Robustness of a classifier (Papernot 2016, equation 12):

        R(F) = min over (X, t) of A(X, t)

    the smallest adversarial distance over the inputs and targets given (a tensor or array of
    :func:`adversarial_distance` values, any shape).
    """
    a = to_numpy(distances, "distances")
    if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
        raise InputError(f"distances must be numbers, got dtype {a.dtype}")
    if not a.size:
        raise InputError("distances is empty: pass the adversarial distances of at least one input")
    if not np.isfinite(a).all():
        raise InputError("distances contains NaN or infinite values; compute them again")
    return float(a.min())
