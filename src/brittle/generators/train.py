"""Training a VAE by maximising the evidence lower bound (ELBO) of Kingma & Welling (2014).

For an image ``x`` and the encoder's ``q(z | x) = N(mu, diag(sigma^2))``, the loss minimised is
the negative ELBO, in nats per image:

    L(x) = E_q[ -log p(x | z) ] + KL(q(z | x) || N(0, I))
         = sum_pixels BCE(x, g(z)) + (1/2) sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2),

with one reparameterised draw ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, per image, and the
Bernoulli likelihood's binary cross-entropy ``BCE(x, p) = -x log p - (1 - x) log(1 - p)``
summed over the pixels (grey levels in ``[0, 1]`` are its targets). The history holds the
per-epoch means of the loss and of its two parts.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from brittle.errors import InputError, ModelOutputError
from brittle.validation import as_tensor, check_integer, check_positive, check_positive_integer
from brittle.zoo import TrainHistory
from brittle.zoo.rng import seeded

from .base import Generator
from .vae import VAE

PARTS = ("reconstruction", "kl")
"""The parts of the loss, as the history and the progress bar name them."""
POSTFIX_EVERY = 10
"""The progress bar's running loss is refreshed (one host sync) every this many batches."""


def elbo_loss(vae: VAE, x: Tensor) -> Tensor:
    """The mean over the batch of the negative ELBO and of its parts: ``(loss, rec, kl)``."""
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    rec = F.binary_cross_entropy_with_logits(vae.decode_logits(z), x, reduction="none")
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
    parts = torch.stack([rec.flatten(1).sum(1).mean(), kl.mean()])
    return torch.cat([parts.sum().reshape(1), parts])


def train_generator(
    gen: Generator,
    x: Any,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainHistory:
    """Train ``gen`` in place on images ``x`` ``(N, C, H, W)`` in ``[0, 1]`` with Adam at ``lr``.

    Each step minimises the mean negative ELBO of a mini-batch (see the module's docstring);
    the progress bar shows the running mean of the loss. ``seed`` fixes the shuffling and the
    reparameterisation noise (torch's global generators are seeded inside and restored after),
    so the same generator trained with the same arguments ends with the same weights on CPU.
    Inputs and hyper-parameters are checked before any work
    (:class:`~brittle.errors.InputError`); a loss that turns NaN or infinite raises
    :class:`~brittle.errors.ModelOutputError`. The data stay where they are; mini-batches go
    to ``device`` (default: the generator's). The module is left in eval mode.
    """
    if not isinstance(gen, VAE):
        raise InputError(
            f"train_generator trains a VAE (it maximises the ELBO), got {type(gen).__name__}"
        )
    check_hyperparameters(epochs, batch_size, lr, seed)
    x = check_images(x, gen)
    where = torch.device(device) if device is not None else gen.device
    gen.to(where)
    opt = torch.optim.Adam(gen.parameters(), lr=lr)
    n_batches = math.ceil(len(x) / batch_size)
    history = TrainHistory(loss=[], seconds=0.0, parts={name: [] for name in PARTS})
    shuffle = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    bar = tqdm(total=epochs * n_batches, desc="train generator", unit="batch", disable=not progress)
    try:
        with seeded(seed, where):
            gen.train()
            for epoch in range(epochs):
                total = torch.zeros(1 + len(PARTS), device=where)
                seen = 0
                for batch, idx in enumerate(
                    torch.randperm(len(x), generator=shuffle).split(batch_size)
                ):
                    opt.zero_grad(set_to_none=True)
                    losses = elbo_loss(gen, x[idx].to(where))
                    losses[0].backward()
                    opt.step()
                    total += losses.detach() * len(idx)
                    seen += len(idx)
                    bar.update()
                    if batch % POSTFIX_EVERY == 0:
                        _report(bar, epoch, (total / seen).tolist(), lr)
                means = (total / len(x)).tolist()
                _report(bar, epoch, means, lr)
                history.loss.append(means[0])
                for name, value in zip(PARTS, means[1:], strict=True):
                    history.parts[name].append(value)
    finally:
        bar.close()
        gen.eval()
    history.seconds = time.perf_counter() - start
    return history


def check_images(x: Any, gen: Generator) -> Tensor:
    """``x`` as a float32 tensor, checked: a non-empty batch of ``gen``'s output shape, finite,
    in ``[0, 1]`` (the Bernoulli likelihood's targets)."""
    x = as_tensor(x, "x")
    if not x.is_floating_point():
        raise InputError(
            f"x must be floating point, got dtype {x.dtype}; convert images with x.float() / 255"
        )
    shape = tuple(gen.output_shape)
    if x.ndim != 4 or len(x) == 0 or tuple(x.shape[1:]) != shape:
        raise InputError(
            f"x must be a non-empty batch (N, C, H, W) of the generator's output shape {shape}, "
            f"got {tuple(x.shape)}; build the generator with output_shape={tuple(x.shape[1:])}"
        )
    if not torch.isfinite(x).all() or bool((x < 0).any() | (x > 1).any()):
        raise InputError(
            "x must hold finite values in [0, 1] (the VAE's Bernoulli likelihood); scale "
            "images to [0, 1], e.g. x / 255"
        )
    return x.float()


def _report(bar: tqdm, epoch: int, means: list[float], lr: float) -> None:
    """Show the running losses on the bar; refuse them if training diverged."""
    if not all(math.isfinite(v) for v in means):
        raise ModelOutputError(
            f"training diverged: the loss is {means[0]} at epoch {epoch + 1}; lower the "
            f"learning rate (lr={lr:g}) or check the data for extreme values"
        )
    bar.set_postfix(
        {
            "epoch": epoch + 1,
            **{n: f"{v:.2f}" for n, v in zip(("loss", *PARTS), means, strict=True)},
        }
    )


def check_hyperparameters(epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """Refuse epochs or a batch size below 1, a learning rate that is not positive and
    finite, a seed that is not an integer (:class:`~brittle.errors.InputError`)."""
    check_positive_integer(epochs, "epochs")
    check_positive_integer(batch_size, "batch_size")
    check_positive(lr, "lr")
    check_integer(seed, "seed")
