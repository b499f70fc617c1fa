"""Which devices brittle runs on, checked before anything is moved there.

brittle computes on the CPU and on CUDA GPUs. :func:`check_device` turns a name into a
``torch.device`` only when it is one of those and exists on this machine, so that a typo, a
device without storage (``meta``) or a GPU the build cannot reach (``cuda`` without CUDA,
``mps``) is refused with one :class:`~brittle.errors.InputError` instead of failing deep
inside torch (an ``AssertionError``, a ``RuntimeError``) once work has started.
"""

from __future__ import annotations

import torch

from brittle.errors import InputError

DEVICES = "cpu, cuda or cuda:N"
"""The device names brittle accepts, in messages."""


def default_device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``: ``cpu``, or a CUDA GPU this machine has.

    Refused (:class:`~brittle.errors.InputError`): a name torch does not know, any other
    kind of device (``meta``, ``mps``, ...), CUDA on a machine or a build without it, and a
    GPU index beyond the GPUs there are.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        reason = str(err).splitlines()[0]
        raise InputError(f"unknown device {device!r}: use {DEVICES} ({reason})") from None
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported: use {DEVICES}")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(
                f"device {device!r} was asked for but no CUDA GPU is available (or this "
                "build of torch has no CUDA); use cpu"
            )
        if resolved.index is not None and resolved.index >= count:
            raise InputError(
                f"device {device!r} does not exist: this machine has {count} GPU(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    return resolved
