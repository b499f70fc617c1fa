"""What a report says of a generator: how recognisable its samples are to a classifier, its
empirical modulus of continuity beside the Lipschitz envelope, and a grid of samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from brittle.classifier import Classifier

from .base import Generator
from .figures import modulus_plot, sample_grid
from .quality import confident_share
from .smoothness import modulus_of_continuity

CONFIDENCE_THRESHOLD = 0.9
QUALITY_SAMPLES = 2_000
GRID_SAMPLES = 64


def modulus_deltas(latent_dim: int) -> list[float]:
    """The distances of the omega curve: 12 from 0.01 to 2 sqrt(d), geometrically spaced
    (``sqrt(2 d)`` is the typical distance between two independent draws)."""
    top = 2 * float(np.sqrt(latent_dim))
    return [float(v) for v in np.geomspace(0.01, top, 12)]


@dataclass(frozen=True)
class GeneratorSummary:
    """The share of samples ``classifier`` gives a class with probability above
    ``threshold``, the empirical omega(delta) and the figures (PNG bytes, not in the JSON)."""

    confident_share: float
    threshold: float
    samples: int
    deltas: list[float]
    omega: list[float]
    lipschitz: float
    figures: list[tuple[str, bytes]] = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "confident_share": self.confident_share,
            "confidence_threshold": self.threshold,
            "samples": self.samples,
            "modulus_of_continuity": {
                "deltas": self.deltas,
                "omega": self.omega,
                "method": "largest ||g(z) - g(z + delta u)|| over 1,000 pairs per delta, "
                "z ~ N(0, I), u uniform on the unit sphere",
                "below_lipschitz_envelope": all(
                    w <= self.lipschitz * t * (1 + 1e-6)
                    for t, w in zip(self.deltas, self.omega, strict=True)
                ),
            },
        }


def summarise_generator(
    gen: Generator,
    classifier: Classifier,
    lipschitz: float,
    *,
    n: int = QUALITY_SAMPLES,
    seed: int = 0,
) -> GeneratorSummary:
    """The generator's part of a bound report: :func:`~.quality.confident_share` of ``n``
    samples, :func:`~.smoothness.modulus_of_continuity` at :func:`modulus_deltas` against
    ``lipschitz``, and a grid of 64 samples (all seeded by ``seed``)."""
    share = confident_share(classifier, gen, n, CONFIDENCE_THRESHOLD, seed=seed)
    deltas, omega = modulus_of_continuity(gen, modulus_deltas(gen.latent_dim), seed=seed)
    _, x = gen.sample(GRID_SAMPLES, torch.Generator(device=gen.device).manual_seed(seed))
    figures = [
        ("Samples of the generator, g(z) for z ~ N(0, I).", sample_grid(x.cpu(), 8)),
        (
            "The generator's empirical modulus of continuity against L delta (the bounds in "
            "image space use omega(t) = L t).",
            modulus_plot(deltas, omega, lipschitz),
        ),
    ]
    return GeneratorSummary(
        confident_share=share,
        threshold=CONFIDENCE_THRESHOLD,
        samples=n,
        deltas=deltas.tolist(),
        omega=omega.tolist(),
        lipschitz=lipschitz,
        figures=figures,
    )
