"""Where this process stands among the processes of one job (``torch.distributed``).

A job launched by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) runs one process per device: gloo on the
CPU, NCCL on GPUs, the GPU of a rank its ``LOCAL_RANK``. :func:`join` starts the process group
of such a job once (a group the caller already started is used as it is); :func:`world` says
where this process stands, a world of one when there is no group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from brittle.devices import check_device, default_device
from brittle.errors import InputError

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""What a launcher sets for every process of a job."""


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes, and its ``local_rank`` on its
    machine. A world of one (rank 0 of 1) when no process group is running."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether other processes share the work."""
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Whether this is rank 0: the one that writes the store and the report."""
        return self.rank == 0


def launched() -> bool:
    """Whether a launcher started this process as one of a job of several."""
    return all(v in os.environ for v in LAUNCH_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def world() -> World:
    """Where this process stands: the running process group's rank and size, else one."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return World(dist.get_rank(), dist.get_world_size(), local)
    return World()


def join(device: str | torch.device | None = None) -> tuple[World, torch.device]:
    """Start the job's process group if a launcher asked for one and none runs yet; this
    process's world and device.

    The device is ``device`` when given (it must exist), else ``cuda:LOCAL_RANK`` when GPUs
    are there, else the CPU. The backend is NCCL for GPUs and gloo for the CPU.
    """
    if launched() and not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        chosen = _device_of(device, local)
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(
            backend=backend, device_id=chosen if chosen.type == "cuda" else None
        )
        return world(), chosen
    place = world()
    if place.distributed:
        return place, _device_of(device, place.local_rank)
    return place, check_device(device) if device is not None else default_device()


def _device_of(device: str | torch.device | None, local_rank: int) -> torch.device:
    """The device of the rank whose local rank is ``local_rank``."""
    if device is not None:
        chosen = check_device(device)
        if chosen.type == "cuda" and chosen.index is None:
            chosen = check_device(f"cuda:{local_rank}")
        return chosen
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise InputError(
                f"local rank {local_rank} has no GPU: this machine has {count}; start at most "
                f"{count} processes per machine (--nproc-per-node), or give --device cpu"
            )
        return torch.device(f"cuda:{local_rank}")
    return torch.device("cpu")
