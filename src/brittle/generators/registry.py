"""The generators brittle can build by name, and a checkpoint can rebuild."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from brittle.errors import InputError
from brittle.zoo.rng import seeded

from .base import Generator
from .vae import VAE

GENERATORS: dict[str, type[Generator]] = {"vae": VAE}
"""Each generator's ``arch`` and its class, built as ``cls(latent_dim, output_shape, **kwargs)``."""


def build_generator(
    arch: str,
    latent_dim: int,
    output_shape: Sequence[int],
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> Generator:
    """Build the generator ``arch`` of :data:`GENERATORS` for latents of dimension
    ``latent_dim`` and images of shape ``output_shape`` ``(C, H, W)``.

    With ``seed`` the initialisation is deterministic (the caller's global random state is
    left untouched). ``kwargs`` go to the architecture (e.g. ``hidden=(512, 256)`` for
    ``"vae"``), which records them as ``arch_kwargs``.
    """
    cls = GENERATORS.get(arch)
    if cls is None:
        raise InputError(f"unknown generator {arch!r}: use one of {', '.join(GENERATORS)}")
    options = list(inspect.signature(cls).parameters)[2:]  # after latent_dim, output_shape
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise InputError(
            f"generator {arch!r} does not take {', '.join(unknown)}; its options are: "
            f"{', '.join(options) or 'none'}"
        )
    with seeded(seed):
        return cls(latent_dim, output_shape, **kwargs)
