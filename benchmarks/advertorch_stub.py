"""Import advertorch 0.2.3 (2020) on today's torch, for the benchmarks only.

Two imports at advertorch's import time fail on this environment, neither of them used by
its attacks:

- ``advertorch.functional`` (the JPEG and bit-squeezing defences) imports ``torchvision``
  for ``transforms.ToPILImage`` / ``ToTensor``; torchvision is not installed. If it is
  missing, a stand-in module is put in ``sys.modules`` whose transforms raise when called.
- ``advertorch.attacks.fast_adaptive_boundary`` imports
  ``torch.autograd.gradcheck.zero_gradients``, removed from torch in 1.9. If it is missing,
  an equivalent (zero the ``.grad`` of a tensor or of each tensor in an iterable) is set on
  ``torch.autograd.gradcheck``.

Nothing else is changed; the JSMA code that the benchmarks run is advertorch's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable
from typing import Any

import torch


class _Unavailable:
    """A torchvision transform that is never used by the attacks: fails if called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision is not installed (advertorch_stub stand-in)")


def _zero_gradients(x: Any) -> None:
    """torch < 1.9's ``torch.autograd.gradcheck.zero_gradients``."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    elif isinstance(x, Iterable):
        for elem in x:
            _zero_gradients(elem)


def install() -> list[str]:
    """Put the stand-ins in place where needed; return what was stubbed."""
    stubbed: list[str] = []
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        vision = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        transforms.ToPILImage = _Unavailable  # type: ignore[attr-defined]
        transforms.ToTensor = _Unavailable  # type: ignore[attr-defined]
        vision.transforms = transforms  # type: ignore[attr-defined]
        sys.modules["torchvision"] = vision
        sys.modules["torchvision.transforms"] = transforms
        stubbed.append("torchvision (stand-in module)")
    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    if not hasattr(gradcheck, "zero_gradients"):
        gradcheck.zero_gradients = _zero_gradients  # type: ignore[attr-defined]
        stubbed.append("torch.autograd.gradcheck.zero_gradients")
    return stubbed


def import_advertorch() -> tuple[Any, list[str]]:
    """``advertorch.attacks`` after :func:`install`, and what was stubbed."""
    stubbed = install()
    attacks = importlib.import_module("advertorch.attacks")
    return attacks, stubbed
