"""Theorem 2 of Fawzi, Fawzi & Fawzi (NeurIPS 2018): the classifier that projects on the
generator's range, and the empirical check of its guarantee.

For a classifier f and a generator g, Theorem 2's classifier is

    f~(x) = f(g(z*(x))),   z*(x) = argmin_z ||g(z) - x||_2,

and it satisfies r_unc(x) >= r_in(x) / 2 at every x = g(z) (r_in measured for f~, which
equals f on the range of g). Proof in one line: if ||v|| < r_in / 2, then
||g(z*(x + v)) - x|| <= ||g(z*(x + v)) - (x + v)|| + ||v|| <= 2 ||v|| < r_in, so f~ keeps its
label. :class:`ProjectedClassifier` computes z* by optimisation; :func:`theorem2_check`
measures both sides on samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.randomness import per_sample
from brittle.validation import check_integer, check_number, check_positive, check_positive_integer

from .bisection import ray_search
from .candidates import Closest
from .estimate import json_float
from .estimate_in_distribution import in_distribution_robustness
from .estimate_unconstrained import unconstrained_robustness
from .inputs import check_pair
from .latent import LatentClassifier, sample_latents

_RAY_TOLERANCE = 1e-2
"""Relative width at which the bisection along a ray stops (the check's tolerance is 5%)."""


def _dtype(module: nn.Module) -> torch.dtype:
    """The floating type of the module's first floating parameter or buffer (else float32)."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class ProjectedClassifier(nn.Module):
    """Theorem 2's classifier f~(x) = f(g(z*)), z* = argmin_z ||g(z) - x||_2, as a module.

    ``forward(x)`` returns f's logits at g(z*(x)), so it can be wrapped in a
    :class:`~brittle.Classifier`. z* is found by Adam on ||g(z) - x||_2^2, ``steps``
    iterations with the step ``lr`` decaying on a cosine to 0, batched over the samples and
    over the starts: ``restarts`` fixed draws from N(0, I) (seeded by ``seed`` at
    construction, the same for every x, so f~ is a function of x alone and does not depend on
    the batch) and, if g has a method ``encode(x) -> (mu, logvar)`` (a VAE), the encoder's mu.
    Per sample the start with the smallest reconstruction error wins.

    Its logits do not depend differentiably on x (the argmin is not differentiated), so a
    gradient attack on it is refused by the attack base (``GradientError``); attack it with a
    score-based (``SimBA``) or decision-based search, as :func:`theorem2_check` does.
    """

    def __init__(
        self,
        classifier: Classifier,
        generator: nn.Module,
        *,
        restarts: int = 4,
        steps: int = 200,
        lr: float = 0.3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        d, _ = check_pair(classifier, generator)
        self.steps = check_positive_integer(steps, "steps")
        self.lr = check_positive(lr, "lr")
        self.generator = generator
        self.image_model = classifier.module
        self.image_classifier = classifier
        starts = sample_latents(check_positive_integer(restarts, "restarts"), d, seed)
        self.register_buffer("starts", starts.to(classifier.device, _dtype(generator)))

    def _starts(self, x: Tensor) -> Tensor:
        """The starting codes ``(S, N, d)``: the fixed draws, and the encoder's mu if any."""
        starts = self.get_buffer("starts")
        out = starts[:, None].expand(-1, len(x), -1)
        encode = getattr(self.generator, "encode", None)
        if callable(encode):
            with torch.no_grad():
                mu = encode(x.to(out.dtype))[0].to(out)
            out = torch.cat([out, mu[None]])
        return out

    def invert(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z*(x) ``(N, d)`` and the inversion error ||g(z*) - x||_2 ``(N,)``."""
        x = x.to(self.image_classifier.device, self.image_classifier.dtype)
        starts = self._starts(x)
        s, n, d = starts.shape
        target = x[None].expand(s, *x.shape).reshape(s * n, *x.shape[1:])
        z = starts.reshape(s * n, d).clone().requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, self.steps)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = (self._images(z) - target).flatten(1).square().sum()
                (z.grad,) = torch.autograd.grad(loss, z)
                optimiser.step()
                schedule.step()
        with torch.no_grad():
            error = (self._images(z) - target).flatten(1).norm(dim=1).view(s, n)
            best = error.argmin(0)
            rows = torch.arange(n, device=x.device)
            return z.detach().view(s, n, d)[best, rows], error[best, rows]

    def _images(self, z: Tensor) -> Tensor:
        out: Tensor = self.generator(z)
        return out.to(self.image_classifier.dtype)

    def forward(self, x: Tensor) -> Tensor:
        z, _ = self.invert(x)
        with torch.no_grad():
            return self.image_classifier.logits(self._images(z))


def _directions(
    classifier: Classifier, x: Tensor, towards: Tensor, random: int, seed: int
) -> list[Tensor]:
    """Where to look for f~'s changes: f's own minimal adversarial direction (DeepFool and
    C&W on f), the direction to the image of r_in's solution, and ``random`` Gaussian ones
    (drawn per sample index)."""
    own = unconstrained_robustness(classifier, x).adversarial - x
    out = [own, towards - x]
    ids = torch.arange(len(x))
    shape = x.shape[1:]
    for k in range(random):
        u = per_sample(seed, ids, ("theorem2", k), lambda g: torch.randn(shape, generator=g))
        out.append(u.to(x))
    return out


def theorem2_check(
    classifier: Classifier,
    generator: nn.Module,
    n: int,
    *,
    seed: int = 0,
    projected: ProjectedClassifier | None = None,
    random_directions: int = 2,
    doublings: int = 6,
    tolerance: float = 0.05,
) -> dict[str, Any]:
    """Theorem 2 measured: r_unc(f~) >= r_in(f~) / 2 at ``n`` samples x = g(z), z ~ N(0, I).

    r_in(f~) is :func:`in_distribution_robustness` of f: f~ = f on the range of g, up to the
    inversion error (reported). r_unc(f~) is measured by a decision-based search on f~
    (``projected``, default ``ProjectedClassifier(classifier, generator, seed=seed)``), its
    gradient being unavailable: along f's own adversarial direction, the direction to the
    image of r_in's solution and ``random_directions`` random ones, the ray clip(x + t u) is
    probed at t = r_in / 4, r_in / 2, r_in, ... (``doublings`` doublings) and bisected where
    f~'s label changes; per sample the smallest verified change. The label is f~'s own at x.

    Both sides are estimates from verified changes, so upper bounds of the true values. A
    sample satisfies the check when r_unc(f~) >= (1 - tolerance) r_in / 2 (no change of f~
    found at all counts as satisfied); the share is over the samples with a finite r_in.
    Returns per-sample lists (``None`` for inf) and the summary.
    """
    d, _ = check_pair(classifier, generator)
    check_integer(random_directions, "random_directions", low=0)
    check_integer(doublings, "doublings", low=0)
    check_number(tolerance, "tolerance", 0, 1, high_open=True)
    if projected is not None and not (
        isinstance(projected, ProjectedClassifier)
        and projected.image_classifier is classifier
        and projected.generator is generator
    ):
        raise InputError("projected must be a ProjectedClassifier of this classifier and generator")
    projected = projected or ProjectedClassifier(classifier, generator, seed=seed)
    z = sample_latents(n, d, seed)
    images = LatentClassifier(classifier, generator)
    x = classifier.check_inputs(images.images(z))
    ind = in_distribution_robustness(classifier, generator, z)
    r_in = ind.values.to(x.device)
    tilde = Classifier(
        projected,
        bounds=classifier.bounds,
        num_classes=classifier.num_classes,
        input_shape=classifier.input_shape,
        device=classifier.device,
    )
    y = tilde.predict(x)
    best = Closest.none(x)
    towards = images.images(ind.adversarial)
    for direction in _directions(classifier, x, towards, random_directions, seed):
        points = ray_search(tilde, x, y, direction, r_in / 4, doublings, _RAY_TOLERANCE)
        best.offer(points, (points - x).flatten(1).norm(dim=1), tilde.predict(points) != y)
    agreement = y == classifier.predict(x)
    return _theorem2_summary(best.distance, r_in, tolerance, agreement, projected.invert(x)[1])


def _theorem2_summary(
    r_unc: Tensor, r_in: Tensor, tolerance: float, agreement: Tensor, error: Tensor
) -> dict[str, Any]:
    """The check's per-sample lists and shares."""
    measured = torch.isfinite(r_in)
    ratio = r_unc / r_in
    satisfied = r_unc >= (1 - tolerance) * r_in / 2
    share = float(satisfied[measured].float().mean()) if bool(measured.any()) else math.nan
    return {
        "n": len(r_in),
        "tolerance": tolerance,
        "r_in": [json_float(v) for v in r_in.tolist()],
        "r_unc_projected": [json_float(v) for v in r_unc.tolist()],
        "ratios": [json_float(v) for v in ratio.tolist()],
        "share_satisfied": json_float(share),
        "violations": int((measured & ~satisfied).sum()),
        "agreement": float(agreement.float().mean()),
        "inversion_error_median": float(error.median()),
        "inversion_error_max": float(error.max()),
        "method": (
            "r_in(f~) = r_in(f) by the in-distribution search; r_unc(f~) by bisection along "
            "rays clip(x + t u) from t = r_in / 4, doubling, for u f's adversarial direction, "
            "the direction to r_in's solution and random directions; satisfied when "
            f"r_unc >= (1 - {tolerance:g}) r_in / 2"
        ),
    }
