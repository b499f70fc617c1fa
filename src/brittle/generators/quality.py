"""How recognisable a generator's samples are to a classifier trained on real data."""

from __future__ import annotations

import torch

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.validation import check_number, check_positive_integer

from .base import Generator


def confident_share(
    classifier: Classifier,
    gen: Generator,
    n: int = 10_000,
    threshold: float = 0.9,
    batch_size: int = 1000,
    seed: int = 0,
) -> float:
    """The share of ``n`` samples ``x = g(z)``, ``z ~ N(0, I)``, that ``classifier`` gives a
    class with softmax probability above ``threshold``:

        (1 / n) * #{ i : max_k softmax(f(g(z_i)))_k > threshold }.

    A generator whose samples look like the real data scores near the classifier's share on
    real test images; blurry or in-between samples lower it. The latents are drawn with
    ``seed`` on the generator's device, ``batch_size`` at a time. The generator's output
    shape must be the classifier's input shape; it is checked before any sample is drawn.
    """
    check_positive_integer(n, "n")
    check_positive_integer(batch_size, "batch_size")
    check_number(threshold, "threshold", 0, 1, high_open=True)
    wanted = classifier.input_shape
    if wanted is not None and tuple(wanted) != tuple(gen.output_shape):
        raise InputError(
            f"the generator makes images of shape {tuple(gen.output_shape)} but the classifier "
            f"takes {tuple(wanted)}; use a generator trained on the classifier's data"
        )
    draws = torch.Generator(device=gen.device).manual_seed(seed)
    confident = torch.zeros((), dtype=torch.long, device=classifier.device)
    for size in [batch_size] * (n // batch_size) + [n % batch_size] * (n % batch_size > 0):
        _, x = gen.sample(size, draws)
        confident += is_confident(classifier, x, threshold, batch_size).sum()
    return int(confident) / n


def is_confident(
    classifier: Classifier, x: torch.Tensor, threshold: float = 0.9, batch_size: int = 1000
) -> torch.Tensor:
    """Per image, whether ``max_k softmax(f(x))_k > threshold`` (a bool tensor ``(N,)``): on
    real test images, the reference for :func:`confident_share`."""
    top = classifier.predict_logits(x, batch_size).softmax(1).amax(1)
    return top > threshold
