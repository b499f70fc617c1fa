"""Random draws that belong to a sample, not to a batch.

Every random number an attack uses (random starts, restarts, random targets, a black-box
attack's order of directions) is drawn from a generator seeded by ``(seed, sample id,
stream)``: the same sample gets the same draws whatever the batch it is in, its position in
the batch, the batch size and the device. That is what makes an evaluation resumed with
another batch size, or split over several processes, give the same result per sample as one
uninterrupted run.

The seed of each generator is a hash of the three numbers by numpy's ``SeedSequence`` (a
well-mixed hash made for exactly this: independent streams from structured keys). Draws are
made on the CPU and moved, so they repeat across devices.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

Draw = Callable[[torch.Generator], Tensor]
"""Draws one sample's random tensor from its generator."""


def stream_key(stream: str | int | Sequence[str | int]) -> list[int]:
    """A stream name (``"pgd-start"``), a number, or a tuple of them as non-negative ints."""
    parts = stream if isinstance(stream, tuple | list) else (stream,)
    return [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]


def sample_generator(
    seed: int, sample_id: int, stream: str | int | Sequence[str | int]
) -> torch.Generator:
    """A CPU generator seeded by ``(seed, sample_id, stream)`` (ids and seeds may be negative)."""
    entropy = [seed & 0xFFFFFFFFFFFFFFFF, sample_id & 0xFFFFFFFFFFFFFFFF, *stream_key(stream)]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def per_sample(
    seed: int,
    ids: Tensor,
    stream: str | int | Sequence[str | int],
    draw: Draw,
    device: torch.device | str | None = None,
) -> Tensor:
    """``draw`` once per sample id from that sample's own generator; the results stacked.

    Row ``i`` depends only on ``(seed, ids[i], stream)``.
    """
    rows = [draw(sample_generator(seed, int(i), stream)) for i in ids.tolist()]
    if not rows:
        return torch.empty(0, device=device)
    return torch.stack(rows).to(device if device is not None else "cpu")
