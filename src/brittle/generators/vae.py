"""The variational auto-encoder of Kingma & Welling (2014) for images in ``[0, 1]``.

An encoder ``q(z | x) = N(mu(x), diag(exp(logvar(x))))`` and a decoder
``g(z) = sigmoid(h(z))``, the mean of a Bernoulli ``p(x | z)`` per pixel, with the prior
``z ~ N(0, I_d)``. Both are MLPs, ``D - hidden - d`` and ``d - reversed(hidden) - D`` with
ReLU (``D = C H W``; the paper's MNIST network has one hidden layer). Training maximises the
evidence lower bound (:mod:`brittle.generators.train`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from brittle.errors import InputError

from .base import Generator

DEFAULT_HIDDEN = (512, 256)
"""The hidden widths of the encoder (the decoder's, reversed)."""


class VAE(Generator):
    """A VAE whose decoder is the generator: ``g(z) = sigmoid(h(z))``.

    ``hidden`` lists the widths of the encoder's hidden layers, from the input; the decoder
    mirrors them. :meth:`forward` is the decoder, :meth:`encode` the encoder.
    """

    arch = "vae"

    def __init__(
        self,
        latent_dim: int = 16,
        output_shape: Sequence[int] = (1, 28, 28),
        hidden: Sequence[int] = DEFAULT_HIDDEN,
    ) -> None:
        super().__init__(latent_dim, output_shape)
        widths = [int(h) for h in hidden]
        if not widths or any(h < 1 for h in widths):
            raise InputError(f"hidden must list at least one width >= 1, got {hidden!r}")
        self.arch_kwargs = {"hidden": widths}
        self.encoder = _mlp([self.num_features, *widths])
        self.mu = nn.Linear(widths[-1], latent_dim)
        self.logvar = nn.Linear(widths[-1], latent_dim)
        self.decoder = nn.Sequential(
            _mlp([latent_dim, *reversed(widths)]), nn.Linear(widths[0], self.num_features)
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior's mean ``mu(x)`` and log-variance ``logvar(x)``, each ``(N, d)``."""
        hidden = self.encoder(x.flatten(1))
        return self.mu(hidden), self.logvar(hidden)

    def decode_logits(self, z: Tensor) -> Tensor:
        """``h(z)``, the decoder's logits ``(N, C, H, W)``: ``g(z) = sigmoid(h(z))``."""
        out: Tensor = self.decoder(z)
        return out.view(-1, *self.output_shape)

    def forward(self, z: Tensor) -> Tensor:
        """``g(z) = sigmoid(h(z))``: images ``(N, C, H, W)`` in ``[0, 1]``."""
        return torch.sigmoid(self.decode_logits(z))


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by a ReLU."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)
