"""Transferability of adversarial examples between models (Goodfellow et al. 2015, section 8).

Adversarial examples crafted on one model are often misclassified by another, and when both
err they often agree on the wrong class: Goodfellow et al. found that a shallow softmax
network agreed with the maxout network it was attacked through on 84.6% of the examples both
misclassified, and explained it by the models' linearity (similar weight vectors, so similar
adversarial directions).

For models ``m_1 .. m_M``, samples ``(x_i, y_i)``, ``i = 1 .. N``, an attack ``A`` and
``x_i^a = A(m_a, x_i, y_i)`` the example crafted on model ``a``:

    error[a, b]         = (1 / N) * |{i : m_b(x_i^a) != y_i}|
    shared_errors[a, b] = |S(a, b)|,  S(a, b) = {i : m_a(x_i^a) != y_i and m_b(x_i^a) != y_i}
    agreement[a, b]     = |{i in S(a, b) : m_a(x_i^a) = m_b(x_i^a)}| / |S(a, b)|

where ``m(x)`` is the predicted class (argmax of the logits, eval mode); agreement is NaN
where there is no shared error. Rows are the model the examples were crafted on, columns the
model that classifies them. The diagonal ``error[a, a]`` is model ``a``'s error under its own
attack, the attack's own verdict; it is ``1 - robust accuracy`` unless the attack turned a
sample the model misclassified into a correct one. ``agreement[a, a]`` is 1 (NaN when
model ``a`` makes no error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from brittle.attacks.base import DEFAULT_BATCH_SIZE, Attack, TargetSpec, check_ids
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.validation import as_tensor, check_positive_integer


@dataclass(frozen=True)
class TransferMatrix:
    """The transfer matrices of :func:`transfer_matrix`: ``[a, b]`` is about the examples
    crafted on model ``a`` and classified by model ``b`` (see the module's docstring).

    ``error``, ``agreement`` (NaN where undefined) and ``shared_errors`` are ``(M, M)``;
    ``clean_error[b]`` is model ``b``'s error rate on the clean samples; ``n`` the number of
    samples, ``attack`` the attack's name.
    """

    names: tuple[str, ...]
    error: np.ndarray
    agreement: np.ndarray
    shared_errors: np.ndarray
    clean_error: np.ndarray
    n: int
    attack: str

    def as_json(self) -> dict[str, Any]:
        """The matrices as nested lists of plain numbers, NaN as ``None``."""
        return {
            "names": list(self.names),
            "attack": self.attack,
            "n": self.n,
            "error": _listed(self.error),
            "agreement": _listed(self.agreement),
            "shared_errors": self.shared_errors.tolist(),
            "clean_error": _listed(self.clean_error),
        }


def _listed(values: np.ndarray) -> list[Any]:
    """``values`` as nested lists of floats, NaN as ``None``."""
    if values.ndim == 1:
        return [None if math.isnan(v) else float(v) for v in values.tolist()]
    return [_listed(row) for row in values]


def transfer_matrix(
    models: Sequence[Classifier],
    attack: Attack,
    x: Any,
    y: Any,
    *,
    names: Sequence[str] | None = None,
    target: TargetSpec = None,
    ids: Tensor | Sequence[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> TransferMatrix:
    """Craft ``attack``'s examples of ``x`` (labels ``y``) on each model and classify them
    with every model: error rates, shared errors and agreement on the wrong class.

    ``names`` label the models (default: their zoo architecture or class, with ``#i``, the
    place in the list, when two share one). ``target`` and ``ids`` go to the attack as in
    :meth:`~brittle.attacks.base.Attack.attack` (the ids seed its random draws, so every
    model is attacked with the same draws). Every model must take the same input shape and
    number of classes and accept ``x`` and ``y``; this is checked before any attack runs
    (:class:`InputError`). Work runs in batches of ``batch_size`` on each model's
    device; predictions run in eval mode without gradients.
    """
    check_positive_integer(batch_size, "batch_size")
    labels = _check_names(models, names)
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if not len(x):
        raise InputError("x holds no samples: there is nothing to attack")
    check_compatible(models, labels, x)
    for model in models:
        model.check_inputs(x)
    y = models[0].check_labels(y, len(x))  # the same classes for all: checked once
    sample_ids = check_ids(ids, len(x), y.device)
    rows = []
    with tqdm(total=len(models) * len(x), desc="transfer", disable=not progress) as bar:
        for a in range(len(models)):
            crafted = _crafted_on(a, models, attack, x, y, target, sample_ids, batch_size, bar)
            rows.append(crafted)
    error, agreement, shared = (np.stack([row[k] for row in rows]) for k in range(3))
    clean = np.array([_error_rate(_predict(m, x, batch_size), y) for m in models])
    return TransferMatrix(labels, error, agreement, shared, clean, len(x), attack.name)


def check_compatible(
    models: Sequence[Classifier], names: Sequence[str], x: Tensor | None = None
) -> None:
    """Refuse models that do not take the same input shape and number of classes.

    Each model's declared ``input_shape`` (that of the inputs ``x`` when it declares none)
    and ``num_classes`` (found by a forward pass on ``x`` when not declared) must agree; the
    :class:`InputError` lists every model with its shape and classes.
    """
    _check_classifiers(models)
    given = None if x is None else tuple(x.shape[1:])
    shapes = [m.input_shape or given for m in models]
    if x is not None and len(set(shapes)) == 1:
        for model in models:
            if model.num_classes is None:
                model.check_outputs(model.check_inputs(x[:8]))
    classes = [m.num_classes for m in models]
    if len(set(shapes)) > 1 or len(set(classes)) > 1:
        listed = "; ".join(
            f"{name}: input shape {s or 'not declared'}, {k or 'unknown'} classes"
            for name, s, k in zip(names, shapes, classes, strict=True)
        )
        raise InputError(
            "every model of a transfer set must take the same input shape and number of "
            f"classes, but they differ: {listed}"
        )


def _check_classifiers(models: Sequence[Classifier]) -> None:
    for model in models:
        if not isinstance(model, Classifier):
            raise InputError(
                f"transfer needs brittle.Classifier models (white box, logits), got "
                f"{type(model).__name__}; wrap a module: brittle.Classifier(module, bounds=(0, 1))"
            )


def _check_names(models: Sequence[Classifier], names: Sequence[str] | None) -> tuple[str, ...]:
    """The models' labels: ``names`` (one per model, distinct) or their architectures."""
    _check_classifiers(models)
    if len(models) < 2:
        raise InputError(f"a transfer matrix needs at least two models, got {len(models)}")
    if names is None:
        arch = [str(getattr(m.module, "arch", type(m.module).__name__)) for m in models]
        names = [a if arch.count(a) == 1 else f"{a}#{i}" for i, a in enumerate(arch)]
    labels = tuple(str(name) for name in names)
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise InputError(
            f"names must give each of the {len(models)} models its own name, got {list(names)}"
        )
    return labels


def _crafted_on(
    a: int,
    models: Sequence[Classifier],
    attack: Attack,
    x: Tensor,
    y: Tensor,
    target: TargetSpec,
    ids: Tensor,
    batch_size: int,
    bar: tqdm,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ``a`` of the matrices: error rates, agreement and shared errors of the examples
    crafted on model ``a``. A non-finite output (prediction -1) agrees with nothing."""
    parts = []
    for start in range(0, len(x), batch_size):
        part = slice(start, start + batch_size)
        aims = target[part] if isinstance(target, Tensor | np.ndarray) else target
        result = attack(models[a], x[part], y[part], aims, ids=ids[part])
        batch = [
            result.pred_adv if b == a else _predict(model, result.x_adv)
            for b, model in enumerate(models)
        ]
        parts.append(torch.stack(batch))
        bar.update(len(result))
    preds = torch.cat(parts, dim=1)  # (M, N), on model a's device
    wrong = preds != y.to(preds.device)
    shared = wrong & wrong[a]
    same = shared & (preds == preds[a]) & (preds[a] >= 0)
    counts = shared.sum(1)
    agreement = torch.where(counts > 0, same.sum(1).double() / counts.clamp_min(1), math.nan)
    return wrong.double().mean(1).cpu().numpy(), agreement.cpu().numpy(), counts.cpu().numpy()


def _predict(model: Classifier, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Predicted classes on ``model``'s device moved to ``x``'s; ``-1`` where the logits are
    not finite (never a correct answer, as in the attack base)."""
    logits = model.predict_logits(x, batch_size)
    pred = torch.where(torch.isfinite(logits).all(1), logits.argmax(1), -1)
    return pred.to(x.device)


def _error_rate(pred: Tensor, y: Tensor) -> float:
    return float((pred != y.to(pred.device)).double().mean())
