"""The memory layout a loaded network is attacked in."""

from __future__ import annotations

import torch
from torch import nn


def prefer_channels_last(module: nn.Module, device: torch.device) -> nn.Module:
    """Store a convolutional network's weights channels-last (NHWC) when it runs on the CPU.

    oneDNN's CPU convolutions and max-pooling are faster on channels-last activations, which
    a channels-last weight gives every layer after it (``benchmarks/bench_layout.py``
    measures the forward and gradient throughput). The function is the same: outputs and
    input gradients agree up to float rounding. Networks without a 2D convolution, and
    other devices, are left as they are. Changes ``module`` in place and returns it.
    """
    convolutional = any(isinstance(m, nn.Conv2d) for m in module.modules())
    if device.type == "cpu" and convolutional:
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module
