"""Which generator for the Fawzi bounds: the VAE at several lengths of training, or a DCGAN?

The bounds need a generator whose samples look like the data (a classifier trained on real
MNIST should recognise them) and whose Lipschitz constant L is small (the image-space bound
grows with L). For the VAE of ``brittle.generators`` (latent dimension 16) trained for each
number of epochs asked, and for a small DCGAN (Radford et al. 2016: a transposed-convolution
generator 16 - 128x7x7 - 64x14x14 - 1x28x28 with batch norm, a convolutional discriminator,
the non-saturating GAN loss, Adam 2e-4, beta1 0.5) trained for ``--gan-epochs``, this measures
the training time, the share of 10,000 samples that the benchmark LeNet (``common``) classifies
with probability above 0.9 (``confident_share``; the same share on the real test images is the
reference) and L (``estimate_lipschitz``). Results go to ``results/generators.md`` and
``.json``. The DCGAN lives here, not in the library: it is the candidate that was measured.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import common
from brittle.data import load_dataset
from brittle.files import write_text_atomic
from brittle.generators import (
    Generator,
    build_generator,
    confident_share,
    estimate_lipschitz,
    is_confident,
    train_generator,
)

LATENT_DIM = 16
SAMPLES = 10_000


class DCGAN(Generator):
    """g(z) = sigmoid(deconv(deconv(relu(bn(W z))))) into 1x28x28."""

    arch = "dcgan"

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim, (1, 28, 28))
        self.arch_kwargs: dict[str, Any] = {}
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU()
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.deconv(self.project(z).view(-1, 128, 7, 7)))


def discriminator() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1),
    )


def train_dcgan(x: Tensor, epochs: int, seed: int = 0) -> DCGAN:
    """Alternate one discriminator and one generator step per batch of 128."""
    torch.manual_seed(seed)
    gen, disc = DCGAN(LATENT_DIM), discriminator()
    opt_g = torch.optim.Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 2e-4, betas=(0.5, 0.999))
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=shuffle).split(128):
            real = x[idx]
            fake = gen(torch.randn(len(idx), LATENT_DIM))
            ones, zeros = torch.ones(len(idx), 1), torch.zeros(len(idx), 1)
            loss_d = F.binary_cross_entropy_with_logits(disc(real), ones)
            loss_d = loss_d + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
    return gen.eval()


def measure(gen: Generator, lenet: Any, seconds: float) -> dict[str, Any]:
    start = time.perf_counter()
    smooth = estimate_lipschitz(gen, seed=0)
    return {
        "train_seconds": seconds,
        "confident_share": confident_share(lenet, gen, SAMPLES, seed=0),
        "lipschitz": smooth.lipschitz,
        "lipschitz_seconds": time.perf_counter() - start,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Generators for the Fawzi bounds: the VAE against a DCGAN",
        "",
        f"`benchmarks/bench_generators.py`, {data['when']}: latent dimension {LATENT_DIM}, "
        f"full MNIST training set; share of {SAMPLES:,} samples that the benchmark LeNet "
        f"classifies with probability above 0.9 (on the real test images: "
        f"{data['real_confident_share']:.1%}); L estimated by `estimate_lipschitz`.",
        "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['logical_cpus']} logical CPUs, "
        f"torch {data['machine']['torch']}, 2 threads.",
        "",
        "| generator | epochs | train s | confident share | L |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        lines.append(
            f"| {row['generator']} | {row['epochs']} | {row['train_seconds']:.0f} | "
            f"{row['confident_share']:.1%} | {row['lipschitz']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae-epochs", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--gan-epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lenet, test = common.trained_lenet()
    train = load_dataset("mnist", "train", data_dir=common.mnist_dir())
    rows = []
    for epochs in args.vae_epochs:
        gen = build_generator("vae", LATENT_DIM, train.input_shape, seed=0)
        start = time.perf_counter()
        train_generator(gen, train.x, epochs=epochs, seed=0, progress=False)
        rows.append(
            {
                "generator": "vae",
                "epochs": epochs,
                **measure(gen, lenet, time.perf_counter() - start),
            }
        )
        print(rows[-1], flush=True)
    start = time.perf_counter()
    gan = train_dcgan(train.x, args.gan_epochs)
    rows.append(
        {
            "generator": "dcgan",
            "epochs": args.gan_epochs,
            **measure(gan, lenet, time.perf_counter() - start),
        }
    )
    print(rows[-1], flush=True)
    data = {
        "machine": common.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "real_confident_share": float(is_confident(lenet, test.x).float().mean()),
        "rows": rows,
    }
    out = common.REPO / "benchmarks" / "results"
    write_text_atomic(out / "generators.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(out / "generators.md", markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
