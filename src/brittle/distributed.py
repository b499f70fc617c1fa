"""Where this process stands among the processes of one job (``torch.distributed``).

A job launched by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) runs one process per device: gloo on the
CPU, NCCL on GPUs, the GPU of a rank its ``LOCAL_RANK``. :func:`join` starts the process group
of such a job once (a group the caller already started is used as it is); :func:`world` says
where this process stands, a world of one when there is no group.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from brittle import errors
from brittle.devices import check_device, default_device
from brittle.errors import InputError

T = TypeVar("T")

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
        atexit.register(_leave)
        return world(), chosen
    place = world()
    if place.distributed:
        return place, _device_of(device, place.local_rank)
    return place, check_device(device) if device is not None else default_device()


def _leave() -> None:
    """Take down the process group :func:`join` started, before the interpreter's teardown
    (left to it, a rank that exits while others still work can abort in the backend's
    threads)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


def agree(facts: Mapping[str, Any], what: str) -> None:
    """Refuse to go on unless every rank holds the same ``facts`` (comparable values, e.g.
    the data's content hash and the settings): an :class:`~brittle.errors.InputError` on every
    rank, naming the first fact that differs, before any rank starts work the others would
    wait on. Nothing to compare in a world of one."""
    place = world()
    if not place.distributed:
        return
    every: list[dict[str, Any] | None] = [None] * place.size
    dist.all_gather_object(every, dict(facts))
    first = every[0] or {}
    for rank, theirs in enumerate(every):
        for key in sorted(set(first) | set(theirs or {})):
            mine, other = first.get(key), (theirs or {}).get(key)
            if mine != other:
                raise InputError(
                    f"the processes disagree on {what}: {key} is {mine!r} on rank 0 but "
                    f"{other!r} on rank {rank}; start every process with the same arguments "
                    "and the same data"
                )


@contextmanager
def together(what: str) -> Iterator[None]:
    """Run the block on every rank and stop every rank when it failed on one.

    A rank whose block raised re-raises its own error; the others raise an error of the same
    brittle kind that names the rank and its message (a rank that cannot see the data, say),
    instead of waiting forever for it at the next collective. In a world of one the block
    runs as it is.
    """
    place = world()
    if not place.distributed:
        yield
        return
    failure: Exception | None = None
    try:
        yield
    except Exception as err:  # every kind, so that no rank is left waiting
        failure = err
    mine = None if failure is None else (type(failure).__name__, str(failure))
    every: list[tuple[str, str] | None] = [None] * place.size
    dist.all_gather_object(every, mine)
    if failure is not None:
        raise failure
    for rank, report in enumerate(every):
        if report is not None:
            kind, message = report
            raise _kind(kind)(f"rank {rank} stopped while {what}: {message}")


def from_leader(work: Callable[[], T]) -> T:
    """``work()`` run by rank 0 alone (writing a file, say), its result given to every rank.

    An error of rank 0's is raised on every rank (the others with its kind and message).
    The result must be picklable. In a world of one, ``work()``.
    """
    place = world()
    if not place.distributed:
        return work()
    box: list[Any] = [None]
    failure: Exception | None = None
    if place.leader:
        try:
            box = [("done", work())]
        except Exception as err:  # every kind, so that no rank is left waiting
            failure = err
            box = [("failed", (type(err).__name__, str(err)))]
    dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    state, value = box[0]
    if state == "failed":
        kind, message = value
        raise _kind(kind)(f"rank 0 stopped: {message}")
    return value


def _kind(name: str) -> type[errors.BrittleError]:
    """The brittle error class called ``name``; :class:`~brittle.errors.BrittleError` for any
    other exception (a bug on another rank)."""
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, errors.BrittleError):
        return found
    return errors.BrittleError
