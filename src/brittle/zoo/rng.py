"""Seeded randomness that leaves the caller's global random state as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore their state after.

    With ``seed=None`` nothing is seeded (the block draws from the global state as usual).
    The CPU generator is always forked; the CUDA generator of ``device`` too when it is a
    CUDA device, so dropout and initialisation are reproducible there as well.
    """
    if seed is None:
        yield
        return
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        # torch.manual_seed would also reseed CUDA devices that fork_rng does not restore
        torch.random.default_generator.manual_seed(seed)
        for d in cuda:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(seed)
        yield
