"""Count the calls that make the host wait for the device, on any device.

On a GPU the host queues kernels and runs ahead; it waits for the device whenever it needs a
value computed there (``bool(t)``, ``int(t)``, ``t.item()``, ``t.tolist()``, a copy to the
CPU), whenever a result's size depends on values (``t.nonzero()``, ``t[mask]`` with a boolean
mask, ``t[mask] = v``, ``torch.unique``, ``repeat_interleave`` by a tensor), and when a CPU
tensor is copied to the device without pinned memory. Each such wait drains the queue: in a
loop of small kernels the GPU then idles between iterations. ``torch.cuda.set_sync_debug_mode``
catches them on CUDA only; :class:`HostSyncs` counts the calls that cause them on the CPU too,
as a ``__torch_function__`` mode, so that tests can bound an attack's syncs per iteration on
any machine.

Counted by kind:

- ``"read"``: a value read by the host (``__bool__``, ``__int__``, ``__float__``,
  ``__index__``, ``item``, ``tolist``, ``numpy``, ``cpu``, ``equal``, ``allclose``);
- ``"shape"``: an output whose size depends on values (``nonzero``, ``argwhere``,
  ``masked_select``, ``unique``, one-argument ``where``, ``repeat_interleave`` by a tensor
  without ``output_size``, indexing or index assignment with a boolean tensor);
- ``"copy"``: data that may come from the host: ``torch.tensor`` or ``as_tensor`` of Python
  data with a device, and ``Tensor.to`` / ``copy_`` with a device (a copy when the source is
  on the CPU and the device is not; a no-op otherwise, which a loop should not rely on).

A sync made inside an operator's C++ code (a few CUDA kernels read a value themselves) is not
seen: on a GPU, ``torch.cuda.set_sync_debug_mode("warn")`` confirms the count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from brittle.model import Model

READS = frozenset(
    {
        "__bool__",
        "__int__",
        "__float__",
        "__index__",
        "__complex__",
        "item",
        "tolist",
        "numpy",
        "cpu",
        "equal",
        "allclose",
        "is_nonzero",
    }
)
"""Calls that read a device value on the host."""
SHAPES = frozenset({"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"})
"""Calls whose output size depends on the values."""
_INDEXING = frozenset({"__getitem__", "__setitem__", "index_put", "index_put_"})


def _is_mask(index: Any) -> bool:
    """Whether an index (or any part of an index tuple) is a boolean tensor."""
    if isinstance(index, tuple | list):
        return any(_is_mask(i) for i in index)
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def _names_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a ``to`` / ``copy_`` / ``tensor`` call is given a device."""
    if kwargs.get("device") is not None:
        return True
    return any(isinstance(a, torch.device | str) for a in args[1:])


def kind_of(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The kind of host sync the call ``name(*args, **kwargs)`` causes on CUDA, or ``None``."""
    if name in READS:
        return "read"
    if name in SHAPES:
        return "shape"
    if name == "where" and len(args) + len(kwargs) == 1:
        return "shape"
    if name == "repeat_interleave" and "output_size" not in kwargs:
        repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
        if isinstance(repeats, torch.Tensor) and repeats.numel() > 1:
            return "shape"
    if name in _INDEXING and len(args) > 1 and _is_mask(args[1]):
        return "shape"
    if name in ("tensor", "as_tensor") and args and not isinstance(args[0], torch.Tensor):
        return "copy" if kwargs.get("device") is not None else None
    if name in ("to", "copy_", "cuda") and (name == "cuda" or _names_device(args, kwargs)):
        return "copy"
    return None


class HostSyncs(TorchFunctionMode):
    """A ``__torch_function__`` mode that counts host syncs by kind (see the module docstring).

    ``with HostSyncs() as syncs: ...`` then ``syncs.total`` and ``syncs.counts``. ``where``
    lists, per kind, the call names seen (``syncs.calls``), to find the offending line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        kind = kind_of(name, args, kwargs)
        if kind is not None:
            self.counts[kind] += 1
            self.calls[f"{kind}:{name}"] += 1
        return func(*args, **kwargs)


def count_host_syncs(fn: Callable[[], Any]) -> HostSyncs:
    """Run ``fn()`` and return the host syncs it made."""
    with HostSyncs() as syncs:
        fn()
    return syncs


@contextmanager
def forward_passes(module: torch.nn.Module) -> Iterator[list[int]]:
    """Count the forward passes of ``module`` while inside: ``passes[0]``."""
    passes = [0]

    def count(*_: Any) -> None:
        passes[0] += 1

    handle = module.register_forward_pre_hook(count)
    try:
        yield passes
    finally:
        handle.remove()


@dataclass(frozen=True)
class SyncRate:
    """Host syncs per iteration of an attack loop, and by call (``"read:__int__"``, ...)."""

    per_iteration: float
    iterations: float
    by_call: dict[str, float]


def syncs_per_iteration(
    attack_at: Callable[[int], Any],
    sizes: tuple[int, int],
    model: Model,
    x: Tensor,
    y: Tensor,
    passes: int = 1,
    **kwargs: Any,
) -> SyncRate:
    """The host syncs one iteration of an attack's loop makes.

    ``attack_at(size)`` builds the attack with ``size`` iterations (steps, queries); it runs
    at both ``sizes`` on ``(x, y)`` (``kwargs`` go to the call), where no sample should stop
    early. Per iteration: the difference of the syncs over the difference of the iterations,
    counted as the passes of the model's module (a forward pre-hook) over ``passes``, the
    passes one iteration makes; what a call does once (checks, setup, the verdict) cancels.
    A first, uncounted run takes what a model does at its first call only.
    """
    module = getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        raise TypeError("syncs_per_iteration counts the passes of a brittle.Classifier's module")
    attack_at(sizes[0])(model, x, y, **kwargs)
    counts = []
    for size in sizes:
        with forward_passes(module) as seen, HostSyncs() as syncs:
            attack_at(size)(model, x, y, **kwargs)
        counts.append((syncs, seen[0]))
    (short, short_passes), (long, long_passes) = counts
    iterations = (long_passes - short_passes) / passes
    if iterations <= 0:
        raise ValueError(f"the runs at sizes {sizes} made as many passes: samples stopped early")
    calls = long.calls.copy()
    calls.subtract(short.calls)
    return SyncRate(
        (long.total - short.total) / iterations,
        iterations,
        {k: v / iterations for k, v in sorted(calls.items()) if v},
    )
