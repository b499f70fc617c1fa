"""The interface every generator shares: a map ``g: R^d -> [0, 1]^(C x H x W)`` of a latent
``z ~ N(0, I_d)`` to an image.

A generator is an ``nn.Module`` whose ``forward(z)`` is ``g(z)``, so ``x = generator(z)``. It
records its latent dimension ``d`` (:attr:`Generator.latent_dim`), the shape of one output
``(C, H, W)`` (:attr:`Generator.output_shape`), its architecture's name (:attr:`Generator.arch`)
and the constructor arguments that rebuild it (:attr:`Generator.arch_kwargs`), which is all a
checkpoint (:mod:`brittle.generators.checkpoint`) needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from brittle.errors import InputError
from brittle.validation import check_integer, check_positive_integer, is_shape

OutputShape = tuple[int, int, int]


class Generator(nn.Module):
    """A decoder ``g: R^d -> [0, 1]^(C x H x W)`` of latents ``z ~ N(0, I_d)``.

    Subclasses set the class attribute ``arch`` (their name in
    :data:`~brittle.generators.GENERATORS`), call ``super().__init__(latent_dim,
    output_shape)``, record their other constructor arguments in :attr:`arch_kwargs`, and
    implement :meth:`forward` from ``(N, d)`` latents to ``(N, C, H, W)`` images in
    ``[0, 1]``, one output row per latent row (no interaction between the rows of a batch in
    eval mode: the smoothness estimates rely on it).
    """

    arch: ClassVar[str]

    def __init__(self, latent_dim: int, output_shape: Sequence[int]) -> None:
        super().__init__()
        check_positive_integer(latent_dim, "latent_dim")
        shape = tuple(output_shape)
        if len(shape) != 3 or not is_shape(shape):
            raise InputError(
                f"output_shape must be three positive integers (C, H, W), got {output_shape!r}"
            )
        self.latent_dim = latent_dim
        self.output_shape: OutputShape = (shape[0], shape[1], shape[2])
        self.arch_kwargs: dict[str, Any] = {}

    @property
    def num_features(self) -> int:
        """Number of output features, ``C * H * W``."""
        return math.prod(self.output_shape)

    @property
    def device(self) -> torch.device:
        """The device of the generator's first parameter or buffer (CPU without any)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def forward(self, z: Tensor) -> Tensor:
        """``g(z)``: images ``(N, C, H, W)`` in ``[0, 1]`` of latents ``z`` ``(N, d)``."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` latents ``z ~ N(0, I_d)`` and their images ``x = g(z)``, without gradients.

        ``generator`` (a ``torch.Generator`` on the generator's device) makes the draw
        reproducible; by default torch's global generator is used. The module's mode is not
        changed: a loaded generator is in eval mode.
        """
        check_integer(n, "n", low=0)
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        with torch.no_grad():
            return z, self(z)
