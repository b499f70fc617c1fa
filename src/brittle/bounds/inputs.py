"""Checks of what the robustness estimators are given, made before any work: counts, step
sizes, the generator and its classifier, latent codes, the attacks and the refinement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from brittle.attacks.base import Attack
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.threat import Norm
from brittle.validation import (
    as_tensor,
    check_integer,
    check_positive,
    check_positive_integer,
    is_integer,
    is_shape,
)


def check_generator(generator: Any) -> tuple[int, tuple[int, ...]]:
    """The generator's ``latent_dim`` and ``output_shape``, checked without running it.

    A generator is an ``nn.Module`` mapping latent codes ``(N, latent_dim)`` to images
    ``(N, *output_shape)`` in the classifier's box (``[0, 1]``).
    """
    if not isinstance(generator, nn.Module):
        raise InputError(f"the generator must be a torch.nn.Module, got {type(generator).__name__}")
    d: Any = getattr(generator, "latent_dim", None)
    if not is_integer(d) or d < 1:
        raise InputError(f"the generator needs an integer attribute latent_dim >= 1, got {d!r}")
    shape: Any = getattr(generator, "output_shape", None)
    if not is_shape(shape):
        raise InputError(
            f"the generator needs an attribute output_shape, one image's shape such as "
            f"(1, 28, 28); got {shape!r}"
        )
    return int(d), tuple(int(s) for s in shape)


def check_pair(classifier: Any, generator: Any) -> tuple[int, tuple[int, ...]]:
    """Check that ``generator`` makes inputs ``classifier`` accepts; its latent dim and shape."""
    if not isinstance(classifier, Classifier):
        raise InputError(
            f"the classifier must be a brittle.Classifier, got {type(classifier).__name__}"
        )
    d, shape = check_generator(generator)
    if classifier.input_shape is not None and shape != classifier.input_shape:
        raise InputError(
            f"the generator makes images of shape {shape} but the classifier expects inputs of "
            f"shape {classifier.input_shape}"
        )
    return d, shape


def check_latents(z: Any, latent_dim: int) -> Tensor:
    """Latent codes ``(N, latent_dim)``, N >= 1, floating point and finite."""
    z = as_tensor(z, "z")
    if not z.is_floating_point():
        raise InputError(f"z must be floating point, got dtype {z.dtype}")
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise InputError(
            f"z must have shape (N, {latent_dim}), the generator's latent dimension; got "
            f"{tuple(z.shape)}"
        )
    if not len(z):
        raise InputError("z holds no samples")
    if not bool(torch.isfinite(z).all()):
        raise InputError("z contains NaN or infinite values")
    return z


def check_attacks(attacks: Sequence[Attack], bounded: bool, where: str) -> tuple[Attack, ...]:
    """Untargeted L2 attacks, each able to work in the box (refused before any work)."""
    out = tuple(attacks)
    if not out or not all(isinstance(a, Attack) for a in out):
        raise InputError("attacks must be a non-empty sequence of brittle attacks")
    for attack in out:
        if attack.norm is not Norm.L2 or attack.targeted:
            raise InputError(
                f"{attack.name} must be an untargeted L2 attack (the estimates are L2 distances)"
            )
        if not bounded and not attack.supports_unbounded:
            raise InputError(f"{attack.name} needs a bounded box; {where} is unbounded")
    return out


def check_refinement(tolerance: float, max_steps: int, batch_size: int) -> None:
    """The bisection's relative tolerance (> 0), its step limit (>= 0) and the batch size."""
    check_positive(tolerance, "tolerance")
    check_integer(max_steps, "max_steps", low=0)
    check_positive_integer(batch_size, "batch_size")
