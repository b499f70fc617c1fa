"""Random draws that belong to a sample, not to a batch.

Every random number an attack uses (random starts, restarts, random targets, a black-box
attack's order of directions) is a function of ``(seed, sample id, stream)`` and its place in
that sample's sequence: the same sample gets the same draws whatever the batch it is in, its
position in the batch, the batch size, the process and the device. That is what makes an
evaluation resumed with another batch size, or split over several processes, give the same
result per sample as one uninterrupted run.

The attacks draw with :func:`uniform` and :func:`normal`: a counter-based generator,
Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC 2011, the generator of cuRAND and of PyTorch's
CUDA sampling), written with integer tensor operations so that it runs where the ids are, all
samples at once, without a host sync. Its key is a hash of ``(seed, stream)`` by numpy's
``SeedSequence`` (a well-mixed hash made for independent streams from structured keys); its
counter is ``(element index, sample id)``. Every product is exact in 64-bit integers, so the
uniforms are the same bits on every device (the normals up to the device's rounding of log
and cos).

:func:`per_sample` runs any draw a ``torch.Generator`` can make, one sample at a time on the
CPU, from a generator seeded by the same hash; it suits draws made once per call (random
targets), not an attack's loop.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

Draw = Callable[[torch.Generator], Tensor]
"""Draws one sample's random tensor from its generator."""
Stream = str | int | Sequence[str | int]
"""A stream: a name (``"pgd-start"``), a number, or a tuple of them."""

_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
"""Philox4x32's multipliers."""
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
"""Philox4x32's key increments (the golden ratio and sqrt(3) - 1, in 32 bits)."""
PHILOX_ROUNDS = 10


def stream_key(stream: Stream) -> list[int]:
    """A stream name (``"pgd-start"``), a number, or a tuple of them as non-negative ints."""
    parts = stream if isinstance(stream, tuple | list) else (stream,)
    return [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]


def sample_generator(seed: int, sample_id: int, stream: Stream) -> torch.Generator:
    """A CPU generator seeded by ``(seed, sample_id, stream)`` (ids and seeds may be negative)."""
    entropy = [seed & 0xFFFFFFFFFFFFFFFF, sample_id & 0xFFFFFFFFFFFFFFFF, *stream_key(stream)]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def per_sample(
    seed: int,
    ids: Tensor,
    stream: Stream,
    draw: Draw,
    device: torch.device | str | None = None,
) -> Tensor:
    """``draw`` once per sample id from that sample's own CPU generator; the results stacked.

    Row ``i`` depends only on ``(seed, ids[i], stream)``. One generator and one draw per
    sample, on the CPU, then a copy: for draws made once per call. Loops use :func:`uniform`.
    """
    rows = [draw(sample_generator(seed, int(i), stream)) for i in ids.tolist()]
    if not rows:
        return torch.empty(0, device=device)
    return torch.stack(rows).to(device if device is not None else "cpu")


def philox_key(seed: int, stream: Stream) -> tuple[int, int]:
    """The Philox key of ``(seed, stream)``: two 32-bit words of their ``SeedSequence`` hash
    (seeds may be negative)."""
    entropy = [seed & 0xFFFFFFFFFFFFFFFF, *stream_key(stream)]
    words = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int(words[0]), int(words[1])


def _mulhilo(a: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The high and low 32 bits of the 64-bit product ``a * m`` (``a`` holds 32-bit values in
    int64, ``m < 2^32``), exactly: ``m`` is split into 16-bit halves, so that no product
    exceeds 2^48 and nothing relies on integer overflow."""
    high = a * (m >> 16)
    low = a * (m & 0xFFFF)  # a * m = high * 2^16 + low
    low += (high & 0xFFFF) << 16
    high >>= 16
    high += low >> 32
    low &= _MASK32
    return high, low


def philox4x32(
    counter: tuple[Tensor, Tensor, Tensor, Tensor], key: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Philox4x32-10 (Salmon et al. 2011) of the 32-bit words ``counter`` (int64 tensors that
    broadcast together) under ``key``: each round maps

        (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),

    and the key grows by (W0, W1) between rounds. In place on the intermediate words (half
    the time of fresh tensors on a CPU)."""
    c0, c1, c2, c3 = torch.broadcast_tensors(*counter)
    k0, k1 = key
    for i in range(PHILOX_ROUNDS):
        if i:
            k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
        hi0, lo0 = _mulhilo(c0, _PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, _PHILOX_M[1])
        hi1 ^= c1
        hi1 ^= k0
        hi0 ^= c3
        hi0 ^= k1
        c0, c1, c2, c3 = hi1, lo1, hi0, lo0
    return c0, c1, c2, c3


def uniform(seed: int, ids: Tensor, stream: Stream, count: int, start: int = 0) -> Tensor:
    """Uniforms in [0, 1), float64, ``(len(ids), count)`` on the ids' device: elements
    ``start`` to ``start + count - 1`` of each sample's sequence of ``(seed, id, stream)``.

    Element ``e`` of sample ``id`` comes from the Philox counter ``(e // 2, id)`` (64 bits
    each, two's complement for negative ids): its words (w0, w1) make element ``2j`` and (w2,
    w3) element ``2j + 1``, as (w0 >> 5) 2^-27 + (w1 >> 6) 2^-53 (53 random bits, numpy's
    construction). Any range of any sample can be drawn alone, with the same values.
    """
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be >= 0, got {count} and {start}")
    ids = ids.to(torch.long)
    first, last = start // 2, (start + count + 1) // 2
    j = torch.arange(first, last, dtype=torch.long, device=ids.device)[None, :]
    words = philox4x32(
        (j & _MASK32, j >> 32, (ids & _MASK32)[:, None], ((ids >> 32) & _MASK32)[:, None]),
        philox_key(seed, stream),
    )
    pairs = [((a >> 5) << 26) | (b >> 6) for a, b in (words[:2], words[2:])]
    bits = torch.stack(pairs, dim=2).reshape(len(ids), 2 * (last - first))
    offset = start - 2 * first
    return bits[:, offset : offset + count].to(torch.float64) * 2.0**-53


def gaussian(u: Tensor) -> Tensor:
    """Standard normals from uniforms ``u`` ``(N, 2k)`` in [0, 1) by Box and Muller (1958):
    for each pair (u1, u2), r = sqrt(-2 log(1 - u1)) gives r cos(2 pi u2) and r sin(2 pi u2),
    ``(N, 2k)`` (columns 2i and 2i + 1 from pair i)."""
    u1, u2 = u[:, 0::2], u[:, 1::2]
    radius = (-2 * torch.log1p(-u1)).sqrt()
    angle = 2 * math.pi * u2
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=2).flatten(1)


def normal(seed: int, ids: Tensor, stream: Stream, count: int) -> Tensor:
    """Standard normals, float64, ``(len(ids), count)``: :func:`gaussian` of the first
    ``2 ceil(count / 2)`` uniforms of each sample's sequence of ``(seed, id, stream)``."""
    pairs = (count + 1) // 2
    return gaussian(uniform(seed, ids, stream, 2 * pairs))[:, :count]
