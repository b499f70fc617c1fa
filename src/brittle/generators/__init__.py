"""Generators of images ``x = g(z)``, ``z ~ N(0, I_d)``, and how smooth they are.

- :class:`Generator`: the interface (``gen(z)`` is ``g(z)``, :meth:`~Generator.sample`);
  :class:`VAE`, the variational auto-encoder whose decoder is ``g``; :data:`GENERATORS`
  and :func:`build_generator`, the registry.
- :func:`train_generator`: trains a VAE on images by maximising the ELBO.
- :func:`save_generator` and :func:`load_generator`: safe checkpoints (no pickles).
- :mod:`.smoothness`: the Lipschitz constant and modulus of continuity of ``g``
  (:func:`estimate_lipschitz`, :func:`modulus_of_continuity`, ...).
- :func:`confident_share`: how many samples a classifier recognises with confidence;
  :func:`sample_grid`, a figure of samples.
"""

from .base import Generator
from .checkpoint import GENERATOR, load_generator, save_generator
from .figures import modulus_plot, sample_grid
from .quality import confident_share, is_confident
from .registry import GENERATORS, build_generator
from .smoothness import (
    Ascent,
    LipschitzEstimate,
    PairwiseRatios,
    estimate_lipschitz,
    jacobian_spectral_norm,
    lipschitz_ascent,
    modulus_of_continuity,
    pairwise_lipschitz,
    power_iteration,
)
from .summary import GeneratorSummary, summarise_generator
from .train import elbo_loss, train_generator
from .vae import VAE

__all__ = [
    "GENERATOR",
    "GENERATORS",
    "VAE",
    "Ascent",
    "Generator",
    "GeneratorSummary",
    "LipschitzEstimate",
    "PairwiseRatios",
    "build_generator",
    "confident_share",
    "elbo_loss",
    "estimate_lipschitz",
    "is_confident",
    "jacobian_spectral_norm",
    "lipschitz_ascent",
    "load_generator",
    "modulus_of_continuity",
    "modulus_plot",
    "pairwise_lipschitz",
    "power_iteration",
    "sample_grid",
    "save_generator",
    "summarise_generator",
    "train_generator",
]
