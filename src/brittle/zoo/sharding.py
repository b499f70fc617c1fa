"""The mini-batches of one process among several, and the global batch they are slices of.

Data-parallel training on ``size`` processes keeps the *global* batch of the one-process
loop: every epoch one permutation of the samples, drawn from the seed (the same on every
process), is cut into global batches of ``batch_size`` rows, and rank ``r`` trains on the
``r``-th of ``size`` equal slices of each. The union of the ranks' slices at step ``k`` is
the one-process batch at step ``k``; with gradients averaged across processes (each rank's
loss a mean over ``batch_size / size`` rows), a step is the one-process step up to the order
of floating-point sums.

The randomness an objective draws per row (PGD's random start, noise) follows the same
rule: inside :func:`sharing`, :func:`batch_rand` draws for the whole global batch from a
generator every process holds in the same state and gives this process its rows, so the
examples crafted at step ``k`` are the one-process examples too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import Tensor

from brittle.distributed import World
from brittle.errors import InputError


class ShardedBatches:
    """The sample indices of each of this process's steps, epoch after epoch.

    Each :meth:`epoch` draws a new permutation of the ``n`` samples from a generator seeded
    with ``seed`` (one draw per epoch, as the one-process loop does) and cuts it into global
    batches of ``batch_size``. In a world of one, this process takes every batch, the last
    one partial when ``batch_size`` does not divide ``n``. In a world of ``size`` processes,
    rank ``r`` takes rows ``r * b`` to ``(r + 1) * b`` of each global batch,
    ``b = batch_size / size``, and the last global batch is left out when it is partial
    (``n mod batch_size`` samples, different ones every epoch since the order is drawn
    anew): every rank takes the same number of steps of the same size, no sample is
    repeated, and every global batch is the one-process batch. ``batch_size`` must be a
    multiple of ``size`` and, with several processes, at most ``n``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, world: World | None = None) -> None:
        self.world = world or World()
        size = self.world.size
        check_global_batch(batch_size, size)
        if size > 1 and batch_size > n:
            most = n - n % size
            advice = (
                f"give a batch size of at most {most}, or train on more samples"
                if most
                else f"train on at least {size} samples"
            )
            raise InputError(
                f"the batch size {batch_size} is more than the {n} training samples: with "
                f"{size} processes every step takes a full global batch; {advice}"
            )
        self.n, self.batch_size = n, batch_size
        self.share = batch_size // size
        self._order = torch.Generator().manual_seed(seed)

    @property
    def start(self) -> int:
        """This process's first row in each global batch."""
        return self.world.rank * self.share

    def __len__(self) -> int:
        """Steps per epoch."""
        if self.world.size == 1:
            return -(-self.n // self.batch_size)
        return self.n // self.batch_size

    def epoch(self) -> list[Tensor]:
        """The sample indices of this process's steps in the next epoch."""
        order = torch.randperm(self.n, generator=self._order)
        if self.world.size == 1:
            return list(order.split(self.batch_size))
        steps = order[: len(self) * self.batch_size].view(len(self), self.batch_size)
        return list(steps[:, self.start : self.start + self.share])


def check_global_batch(batch_size: int, size: int) -> None:
    """Refuse a global batch that ``size`` processes cannot share equally (a batch size
    below 1 is left to the training's own check)."""
    if batch_size >= 1 and batch_size % size:
        below, above = batch_size - batch_size % size, batch_size + size - batch_size % size
        near = " or ".join(str(v) for v in (below, above) if v > 0)
        raise InputError(
            f"the batch size {batch_size} (the global batch, split among the processes) is "
            f"not divisible by the {size} processes; give a multiple of {size}, e.g. {near}, "
            "so that every process gets the same share"
        )


@dataclass(frozen=True)
class BatchShare:
    """Rows ``start`` to ``start + rows`` of a global batch of ``total`` rows are this
    process's, and ``generator`` (in the same state on every process) draws the global
    batch's randomness."""

    start: int
    total: int
    generator: torch.Generator


_SHARE: ContextVar[BatchShare | None] = ContextVar("brittle_batch_share", default=None)


@contextmanager
def sharing(share: BatchShare) -> Iterator[None]:
    """Inside the block, :func:`batch_rows` and :func:`batch_rand` place this process's
    rows in the global batch of ``share``."""
    token = _SHARE.set(share)
    try:
        yield
    finally:
        _SHARE.reset(token)


def batch_rows(rows: int) -> tuple[int, int]:
    """Where a batch of ``rows`` rows of this process sits: ``(first row, rows of the global
    batch)``; ``(0, rows)`` outside :func:`sharing` (the batch is the global one)."""
    share = _SHARE.get()
    return (0, rows) if share is None else (share.start, share.total)


def batch_rand(
    shape: Sequence[int],
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
    normal: bool = False,
) -> Tensor:
    """``torch.rand`` (``torch.randn`` with ``normal``) of ``shape``, rows first.

    Outside :func:`sharing`, from torch's global generator, as ``torch.rand(shape)`` draws.
    Inside, rows ``start`` to ``start + shape[0]`` of a draw for the whole global batch from
    the share's generator: the rows the one-process loop gives these samples.
    """
    draw = torch.randn if normal else torch.rand
    share = _SHARE.get()
    if share is None:
        return draw(tuple(shape), device=device, dtype=dtype)
    whole = draw((share.total, *shape[1:]), device=device, dtype=dtype, generator=share.generator)
    return whole[share.start : share.start + shape[0]]
