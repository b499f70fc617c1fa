"""f o g: a classifier f composed with a generator g, as a module and as a brittle
:class:`~brittle.Classifier` on the unbounded latent box; and the latent draws z ~ N(0, I)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.validation import check_integer, check_positive_integer

from .inputs import check_pair


class LatentModule(nn.Module):
    """f o g as one module: latent codes ``(N, d)`` to f's logits at g(z).

    f's preprocessing runs inside (through :meth:`Classifier.logits`); f's module and the
    generator are submodules, so a :class:`Classifier` around this one puts both in its mode
    and freezes both.
    """

    def __init__(self, classifier: Classifier, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.image_model = classifier.module
        self.image_classifier = classifier

    def images(self, z: Tensor) -> Tensor:
        """g(z), in f's floating type."""
        out: Tensor = self.generator(z)
        return out.to(self.image_classifier.dtype)

    def forward(self, z: Tensor) -> Tensor:
        return self.image_classifier.logits(self.images(z))


class LatentClassifier(Classifier):
    """f o g as a brittle Classifier on the unbounded latent box ``(-inf, inf)^d``.

    Any attack that supports an unbounded box runs on it through the attack base (budget,
    verified success). Like every Classifier it moves its module, so the generator, to f's
    device.
    """

    def __init__(self, classifier: Classifier, generator: nn.Module) -> None:
        d, _ = check_pair(classifier, generator)
        self.composite = LatentModule(classifier, generator)
        self.image_classifier = classifier
        super().__init__(
            self.composite,
            bounds=(-math.inf, math.inf),
            num_classes=classifier.num_classes,
            input_shape=(d,),
            device=classifier.device,
        )

    def images(self, z: Tensor, batch_size: int = 1024) -> Tensor:
        """g(z) without gradient, in eval mode, in batches, in f's floating type."""
        z = z.to(self.device, self.dtype)
        with self.evaluation(), torch.no_grad():
            return torch.cat([self.composite.images(b) for b in z.split(batch_size)])


def sample_latents(n: int, latent_dim: int, seed: int) -> Tensor:
    """``n`` draws of z ~ N(0, I_d) from a CPU generator seeded by ``seed`` (device-independent)."""
    check_positive_integer(n, "n")
    seed = check_integer(seed, "seed")
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
