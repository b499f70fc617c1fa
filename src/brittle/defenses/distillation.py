"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, S&P 2016).

A teacher is trained with its softmax at temperature T, ``softmax(z / T)``; its soft labels
``p_T(x) = softmax(z_teacher(x) / T)`` then train a student, also at temperature T:

    J(theta, x, p) = -sum_k p_k log softmax(z_student(x) / T)_k.

The student is deployed at T = 1: its logits are used as they are, which makes them about T
times larger than a model trained at T = 1 would give, so the softmax saturates and the
cross-entropy's input gradient vanishes. That masks the gradient rather than removing the
adversarial examples: Carlini & Wagner (2016, "Defensive distillation is not robust to
adversarial examples") break it with a loss on the logits, and
:func:`brittle.metrics.gradient_masking_check` flags it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle.errors import InputError
from brittle.validation import is_real


def check_temperature(temperature: float) -> float:
    """A softmax temperature: a finite number > 0."""
    if not is_real(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise InputError(
            f"the temperature T must be a finite number > 0, got {temperature!r} (the paper "
            "used T = 100 on MNIST: --temperature 100)"
        )
    return float(temperature)


class TemperatureCrossEntropy:
    """The loss ``J = cross_entropy(z(x) / T, y)``, ``y`` class indices or soft labels."""

    def __init__(self, temperature: float) -> None:
        self.temperature = check_temperature(temperature)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x) / self.temperature, y)

    def __repr__(self) -> str:
        return f"TemperatureCrossEntropy(temperature={self.temperature:g})"


def soft_labels(
    teacher: nn.Module,
    x: Tensor,
    temperature: float,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> Tensor:
    """``softmax(z_teacher(x) / T)`` for every row of ``x``, in eval mode without gradients.

    Computed in batches on ``device`` (default: the teacher's) and returned on the device of
    ``x``; the teacher's train/eval mode is restored.
    """
    temperature = check_temperature(temperature)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    first = next(iter(teacher.parameters()), None)
    where = (
        torch.device(device)
        if device is not None
        else (first.device if first is not None else x.device)
    )
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            parts = [
                (teacher(xb.to(where)) / temperature).softmax(1).to(x.device)
                for xb in x.split(batch_size)
            ]
    finally:
        teacher.train(was_training)
    return torch.cat(parts)


def describe_distillation(temperature: float, teacher: str) -> dict[str, Any]:
    """The defence as recorded in a student's checkpoint metadata."""
    return {"name": "distill", "temperature": check_temperature(temperature), "teacher": teacher}
