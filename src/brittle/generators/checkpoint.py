"""Generator checkpoints, as safe as the classifiers' (:mod:`brittle.zoo.checkpoint`).

The same file format and checks: a state_dict and JSON metadata read with
``torch.load(weights_only=True)``, the architecture rebuilt from :data:`GENERATORS` after its
shapes were checked on the meta device, written atomically. The metadata hold
``kind = "generator"``, ``arch``, ``arch_kwargs``, ``latent_dim`` and ``output_shape``, plus
what the caller adds (the command line records the data set, epochs, seed and final loss).
A classifier's checkpoint is refused by :func:`load_generator`, a generator's by
:func:`~brittle.zoo.load_checkpoint`, each with what the file is and how to load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from brittle.zoo.checkpoint import Kind, load_module, save_module

from .base import Generator
from .registry import GENERATORS, build_generator


def _build(meta: Mapping[str, Any]) -> Generator:
    return build_generator(
        meta["arch"], meta["latent_dim"], meta["output_shape"], **meta["arch_kwargs"]
    )


GENERATOR = Kind(
    name="generator",
    fields=("latent_dim", "output_shape"),
    architectures=GENERATORS,
    build=_build,
    builder="brittle.generators.build_generator",
    saver="brittle.generators.save_generator",
    convert=(
        "build the generator with brittle.generators.build_generator(arch, latent_dim, "
        "output_shape), load the weights into it with gen.load_state_dict(...), and save it "
        "with brittle.generators.save_generator(path, gen, meta)"
    ),
)
"""The generators of :data:`GENERATORS`, as checkpoints hold them."""


def save_generator(path: str | Path, gen: Generator, meta: Mapping[str, Any]) -> Path:
    """Save ``gen``'s state_dict and ``meta`` to ``path`` atomically; return the path.

    ``arch``, ``arch_kwargs``, ``latent_dim`` and ``output_shape`` come from ``gen``;
    ``kind``, ``brittle_version`` and ``created`` are filled in; ``meta`` must be
    JSON-serialisable (see :func:`brittle.zoo.save_checkpoint`).
    """
    return save_module(path, gen, meta, GENERATOR)


def load_generator(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[Generator, dict[str, Any]]:
    """Rebuild the generator saved at ``path`` on ``device`` (default CPU), in eval mode,
    and return it with its metadata. Raises :class:`~brittle.errors.CheckpointError` for a
    file that is not a safe generator checkpoint (see :func:`brittle.zoo.load_checkpoint`),
    e.g. a classifier's."""
    gen, meta = load_module(path, GENERATOR, device)
    assert isinstance(gen, Generator)  # GENERATOR builds nothing else
    return gen, meta
