"""The adjacent-pixel detector suggested in Papernot et al. 2016 (section 6), and its ROC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor

from brittle.errors import InputError
from brittle.metrics.papernot2016.source_target import to_numpy


def adjacent_pixel_score(x: Any) -> Tensor:
    """Mean squared difference between adjacent pixels of each image, ``(N,)``:

        D(X) = (sum_{c,i,j} (X[c,i,j+1] - X[c,i,j])^2 + sum_{c,i,j} (X[c,i+1,j] - X[c,i,j])^2)
               / (C * (H * (W - 1) + (H - 1) * W))

    over the horizontal and vertical neighbours in every channel. JSMA saturates scattered
    pixels, so its examples score higher than natural images. ``x`` is ``(N, C, H, W)`` or
    ``(N, H, W)`` (a tensor or an array); integer images are converted to float64.
    """
    t = x if isinstance(x, Tensor) else torch.as_tensor(to_numpy(x, "x"))
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise InputError(f"x must be images (N, C, H, W) or (N, H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"x must hold real pixel values, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    n, c, h, w = t.shape
    if not n:
        raise InputError("x is empty: pass at least one image")
    pairs = c * (h * (w - 1) + (h - 1) * w)
    if not pairs:
        raise InputError(f"images of size {h}x{w} have no adjacent pixels; pass larger images")
    horizontal = (t[..., :, 1:] - t[..., :, :-1]).square().flatten(1).sum(1)
    vertical = (t[..., 1:, :] - t[..., :-1, :]).square().flatten(1).sum(1)
    return (horizontal + vertical) / pairs


@dataclass(frozen=True)
class Roc:
    """A detector's ROC curve (false and true positive rates per threshold) and its AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def _scores(value: Any, name: str) -> np.ndarray:
    arr = to_numpy(value, name)
    if arr.ndim != 1:
        raise InputError(f"{name} must be one score per input (N,), got shape {arr.shape}")
    if not len(arr):
        raise InputError(f"{name} is empty: pass the scores of at least one input")
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        raise InputError(f"{name} must be numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return arr.astype(np.float64)


def detector_roc(clean_scores: Any, adversarial_scores: Any) -> Roc:
    """ROC of a detector that flags high scores as adversarial (the positive class).

    Uses scikit-learn's ``roc_curve`` and ``roc_auc_score`` on the labels 0 (clean) and 1
    (adversarial); AUC = P(score of an adversarial input > score of a clean one), ties
    counting one half.
    """
    clean = _scores(clean_scores, "clean_scores")
    adv = _scores(adversarial_scores, "adversarial_scores")
    labels = np.concatenate([np.zeros(len(clean), dtype=np.int64), np.ones(len(adv), np.int64)])
    scores = np.concatenate([clean, adv])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    auc = float(roc_auc_score(labels, scores))
    return Roc(np.asarray(fpr, float), np.asarray(tpr, float), np.asarray(thresholds), auc)
