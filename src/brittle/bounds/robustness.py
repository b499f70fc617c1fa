"""The robustness estimators of Fawzi, Fawzi & Fawzi (NeurIPS 2018), per sample and batched.

For a classifier f on images and a generator g: R^d -> images, at x = g(z):

- latent robustness,          r_Z(z)   = min ||r||_2               s.t. f(g(z + r)) != f(g(z));
- in-distribution robustness, r_in(z)  = min ||g(z + r) - g(z)||_2 s.t. f(g(z + r)) != f(g(z));
- unconstrained robustness,   r_unc(x) = min ||r||_2               s.t. f(x + r) != f(x).

The label to move away from is always f's own prediction at the clean point, never a ground
truth. Every estimate is the size of a change the model was seen to make: each search offers
candidate adversarial points, each candidate is refined by bisection along the segment from
the clean point to it (:func:`refine_segment`), and a candidate counts only once a batched
pass of the model at it confirms the change of label (the attack base's rule, applied to the
refined points too). So every value is an upper bound on the true minimum, and a sample that
no search flips is ``inf`` (and counted: :attr:`RobustnessEstimate.success_rate`).

Theorem 3 (transferability) is measured by :func:`common_perturbation_share`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from brittle.attacks import PGD, CarliniWagnerL2, DeepFool, Minimize
from brittle.attacks.base import Attack
from brittle.attacks.cw import margin
from brittle.attacks.fgsm import steepest_ascent
from brittle.attacks.iterative import random_offset
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.model import as_tensor
from brittle.perturbation import broadcast_view, project, within_budget
from brittle.randomness import per_sample
from brittle.threat import Norm

Quantity = Literal["r_Z", "r_in", "r_unc"]
Path = Callable[[Tensor, Tensor], Tensor]
"""Maps path parameters ``t`` ``(M,)`` of the rows ``rows`` ``(M,)`` to their points."""
Changed = Callable[[Tensor, Tensor], Tensor]
"""Maps points of the rows ``rows`` to whether the model's label there changed."""
Measure = Callable[[Tensor], Tensor]
"""Maps candidate points ``(N, ...)`` to the distance the estimate reports ``(N,)``."""

TOLERANCE = 1e-3
"""Bisection stops for a sample once its bracket is under this fraction of its upper end."""
MAX_BISECTIONS = 30
BATCH_SIZE = 256
"""Samples searched at once (the attacks' Jacobians grow with it)."""
LATENT_RADIUS = 2.0
"""The latent PGD's largest L2 budget, in units of sqrt(d): twice the typical ||z||."""

_NUDGES = (1e-3, 1e-2, 1e-1, 1.0)
"""Shares of the way from a refined point to its segment's end tried when the re-check of the
whole batch does not confirm it: a point within rounding of the boundary, which a batch of
another size can round the other way."""
_RAY_SEED = 0
"""The seed of the fallback rays' directions, drawn per sample id."""
_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8
_GIVE_UP = 0.01
"""A sample stops a round of the penalty search once its objective fell by less than this
fraction over the last ceil(steps / 10) iterations (Carlini & Wagner's abort-early)."""
_BRACKET = 1.1
"""The search over the penalty constant ends once upper <= 1.1 * lower."""
_TINY_MARGIN = 1e-6
"""Floor of the clean margin f_y - max_{j != y} f_j in the penalty's unit (a tie is 0)."""


# ---------------------------------------------------------------------- checks
def check_int(value: Any, name: str, low: int = 1) -> int:
    """``value`` if it is an integer >= ``low`` (not a bool), else an :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_positive(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite number > 0, else an :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_generator(generator: Any) -> tuple[int, tuple[int, ...]]:
    """The generator's ``latent_dim`` and ``output_shape``, checked without running it.

    A generator is an ``nn.Module`` mapping latent codes ``(N, latent_dim)`` to images
    ``(N, *output_shape)`` in the classifier's box (``[0, 1]``).
    """
    if not isinstance(generator, nn.Module):
        raise InputError(f"the generator must be a torch.nn.Module, got {type(generator).__name__}")
    d = getattr(generator, "latent_dim", None)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise InputError(f"the generator needs an integer attribute latent_dim >= 1, got {d!r}")
    shape = getattr(generator, "output_shape", None)
    if not isinstance(shape, tuple | list) or not shape or not all(map(_is_size, shape)):
        raise InputError(
            f"the generator needs an attribute output_shape, one image's shape such as "
            f"(1, 28, 28); got {shape!r}"
        )
    return d, tuple(shape)


def check_pair(classifier: Any, generator: Any) -> tuple[int, tuple[int, ...]]:
    """Check that ``generator`` makes inputs ``classifier`` accepts; its latent dim and shape."""
    if not isinstance(classifier, Classifier):
        raise InputError(
            f"the classifier must be a brittle.Classifier, got {type(classifier).__name__}"
        )
    d, shape = check_generator(generator)
    if classifier.input_shape is not None and shape != classifier.input_shape:
        raise InputError(
            f"the generator makes images of shape {shape} but the classifier expects inputs of "
            f"shape {classifier.input_shape}"
        )
    return d, shape


def check_latents(z: Any, latent_dim: int) -> Tensor:
    """Latent codes ``(N, latent_dim)``, N >= 1, floating point and finite."""
    z = as_tensor(z, "z")
    if not z.is_floating_point():
        raise InputError(f"z must be floating point, got dtype {z.dtype}")
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise InputError(
            f"z must have shape (N, {latent_dim}), the generator's latent dimension; got "
            f"{tuple(z.shape)}"
        )
    if not len(z):
        raise InputError("z holds no samples")
    if not bool(torch.isfinite(z).all()):
        raise InputError("z contains NaN or infinite values")
    return z


def _check_attacks(attacks: Sequence[Attack], bounded: bool, where: str) -> tuple[Attack, ...]:
    """Untargeted L2 attacks, each able to work in the box (refused before any work)."""
    out = tuple(attacks)
    if not out or not all(isinstance(a, Attack) for a in out):
        raise InputError("attacks must be a non-empty sequence of brittle attacks")
    for attack in out:
        if attack.norm is not Norm.L2 or attack.targeted:
            raise InputError(
                f"{attack.name} must be an untargeted L2 attack (the estimates are L2 distances)"
            )
        if not bounded and not attack.supports_unbounded:
            raise InputError(f"{attack.name} needs a bounded box; {where} is unbounded")
    return out


def _check_refinement(tolerance: float, max_steps: int, batch_size: int) -> None:
    check_positive(tolerance, "tolerance")
    check_int(max_steps, "max_steps", low=0)
    check_int(batch_size, "batch_size")


# ---------------------------------------------------------------------- f o g
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
    check_int(n, "n")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def _l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).norm(dim=1)


# ---------------------------------------------------------------------- bisection
def bisect_path(
    path: Path,
    changed: Changed,
    lo: Tensor,
    hi: Tensor,
    best: Tensor,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
) -> Tensor:
    """Bisect each row's bracket [lo, hi] of a path parameter; return its last changed point.

    ``lo`` is a parameter where the label has not changed, ``hi`` one where it has (rows with
    ``hi = inf`` are skipped); ``best`` holds each row's point at ``hi``. Each step evaluates
    the midpoints of the rows still going, in one batch, and moves ``hi`` (changed, and the
    point goes to ``best``) or ``lo`` (not changed). A row stops once hi - lo <= tolerance * hi
    (early stop per sample) or after ``max_steps`` steps. ``lo``, ``hi`` and ``best`` are
    updated in place. Along a path whose label changes once, hi ends within ``tolerance`` of
    the change; otherwise at some change, never at a point that was not seen changed.
    """
    active = ((hi - lo) > tolerance * hi).nonzero().squeeze(1)
    for _ in range(max_steps):
        if not len(active):
            break
        mid = (lo[active] + hi[active]) / 2
        points = path(mid, active)
        flip = changed(points, active)
        hi[active] = torch.where(flip, mid, hi[active])
        lo[active] = torch.where(flip, lo[active], mid)
        best[active] = torch.where(broadcast_view(flip, points), points, best[active])
        active = active[(hi[active] - lo[active]) > tolerance * hi[active]]
    return best


def refine_segment(
    model: Classifier,
    start: Tensor,
    end: Tensor,
    found: Tensor,
    y: Tensor,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
) -> Tensor:
    """Per sample, the point start + t (end - start), t in (0, 1], where ``model``'s label
    stops being ``y``, by bisection on t from the bracket [0, 1].

    ``start`` has label ``y``; ``end`` (where ``found``) does not. Rows not ``found`` come
    back as ``end``. A label that changes once along the segment is located within
    ``tolerance`` (relative) of the change: the smallest change along that direction.
    """
    direction = end - start

    def path(t: Tensor, rows: Tensor) -> Tensor:
        return start[rows] + broadcast_view(t, start) * direction[rows]

    def changed(points: Tensor, rows: Tensor) -> Tensor:
        return model.predict(points) != y[rows]

    lo = torch.zeros(len(start), dtype=start.dtype, device=start.device)
    hi = torch.where(found, 1.0, math.inf).to(lo)
    best = bisect_path(path, changed, lo, hi, end.clone(), tolerance, max_steps)
    return _confirm(model, path, hi, best, found, y)


def _confirm(
    model: Classifier, path: Path, hi: Tensor, best: Tensor, found: Tensor, y: Tensor
) -> Tensor:
    """Re-check the refined points of all rows in one batch; move those it does not confirm
    (within rounding of the boundary) 0.1%, 1%, 10%, then all of the way to the end."""
    for share in _NUDGES:
        doubt = (found & (model.predict(best) == y)).nonzero().squeeze(1)
        if not len(doubt):
            break
        t = hi[doubt] + (1 - hi[doubt]) * share
        best[doubt] = path(t, doubt)
        hi[doubt] = t
    return best


def ray_search(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    direction: Tensor,
    start: Tensor,
    doublings: int,
    tolerance: float = TOLERANCE,
) -> Tensor:
    """Per sample, a point of the ray clip(x + t u), u = direction / ||direction||, where
    ``model``'s label is no longer ``y``: t = start, 2 start, 4 start, ... (``doublings``
    times) until the label changes, then bisection between the last two (labels only: a
    decision-based search). Rows with a zero direction, an infinite start or no change come
    back as x."""
    size = direction.flatten(1).norm(dim=1)
    u = direction / broadcast_view(size.clamp_min(1e-12), direction)
    t = torch.where((size > 0) & torch.isfinite(start), start, math.inf)
    lo, hi, best = torch.zeros_like(t), torch.full_like(t, math.inf), x.clone()

    def path(s: Tensor, rows: Tensor) -> Tensor:
        return model.clip(x[rows] + broadcast_view(s, x) * u[rows])

    def changed(points: Tensor, rows: Tensor) -> Tensor:
        return model.predict(points) != y[rows]

    active = torch.isfinite(t).nonzero().squeeze(1)
    for _ in range(doublings + 1):
        if not len(active):
            break
        points = path(t[active], active)
        flip = changed(points, active)
        hi[active] = torch.where(flip, t[active], hi[active])
        lo[active] = torch.where(flip, lo[active], t[active])
        best[active] = torch.where(broadcast_view(flip, points), points, best[active])
        t[active] = t[active] * 2
        active = active[~flip]
    return bisect_path(path, changed, lo, hi, best, tolerance)


@dataclass
class Closest:
    """Per sample the closest verified adversarial point so far, and its distance."""

    points: Tensor
    distance: Tensor

    @classmethod
    def none(cls, clean: Tensor) -> Closest:
        """No candidate yet: the clean points, at distance inf."""
        inf = torch.full((len(clean),), math.inf, dtype=clean.dtype, device=clean.device)
        return cls(clean.clone(), inf)

    def offer(
        self, points: Tensor, distance: Tensor, ok: Tensor, rows: Tensor | None = None
    ) -> None:
        """Keep the candidates (of the rows ``rows``) that are ``ok`` and closer."""
        idx = torch.arange(len(self.distance), device=points.device) if rows is None else rows
        better = ok & (distance < self.distance[idx])
        self.points[idx] = torch.where(broadcast_view(better, points), points, self.points[idx])
        self.distance[idx] = torch.where(better, distance, self.distance[idx])


def _offer_refined(
    best: Closest,
    model: Classifier,
    clean: Tensor,
    end: Tensor,
    found: Tensor,
    y: Tensor,
    measure: Measure,
    tolerance: float,
    max_steps: int,
) -> None:
    """Offer ``end`` and its bisection along the segment from ``clean``, each verified."""
    refined = refine_segment(model, clean, end, found, y, tolerance, max_steps)
    for points in (end, refined):
        verified = found & (model.predict(points) != y)
        best.offer(points, measure(points), verified)


@dataclass(frozen=True)
class Rays:
    """The fallback of a search for the samples its attacks did not flip: ``count`` random
    Gaussian directions per sample (drawn per sample id), each a :func:`ray_search` from
    t = ``start`` with ``doublings`` doublings."""

    count: int
    start: float
    doublings: int


def _search(
    model: Classifier,
    x: Tensor,
    ids: Tensor,
    attacks: Sequence[Attack],
    refinement: tuple[float, int],
    extra: Tensor | None = None,
    rays: Rays | None = None,
) -> tuple[Tensor, Tensor]:
    """Each attack on every sample (through the attack base), each result refined by
    bisection; then ``extra`` candidates; then ``rays`` on the samples still not flipped.
    Per sample the smallest verified L2 change. Returns (distances, points)."""
    y = model.predict(x)
    best = Closest.none(x)

    def measure(points: Tensor) -> Tensor:
        return _l2(points, x)

    for attack in attacks:
        result = attack(model, x, y, ids=ids)
        _offer_refined(best, model, x, result.x_adv, result.success, y, measure, *refinement)
    if extra is not None:
        found = torch.ones_like(y, dtype=torch.bool)
        _offer_refined(best, model, x, extra, found, y, measure, *refinement)
    if rays is not None:
        _offer_rays(best, model, x, y, ids, rays, refinement[0])
    return best.distance, best.points


def _offer_rays(
    best: Closest,
    model: Classifier,
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    rays: Rays,
    tolerance: float,
) -> None:
    """:class:`Rays` on the rows of ``best`` without a candidate, each verified."""
    shape = x.shape[1:]

    def draw(g: torch.Generator) -> Tensor:
        return torch.randn(shape, generator=g)

    for k in range(rays.count):
        todo = torch.isinf(best.distance).nonzero().squeeze(1)
        if not len(todo):
            break
        u = per_sample(_RAY_SEED, ids[todo], ("rays", k), draw, x.device).to(x)
        start = torch.full((len(todo),), rays.start, dtype=x.dtype, device=x.device)
        points = ray_search(model, x[todo], y[todo], u, start, rays.doublings, tolerance)
        verified = model.predict(points) != y[todo]
        best.offer(points, _l2(points, x[todo]), verified, todo)


def _by_chunks(
    n: int, batch_size: int, work: Callable[[slice], tuple[Tensor, ...]]
) -> tuple[Tensor, ...]:
    """``work`` on consecutive slices of at most ``batch_size`` samples; each of its outputs
    concatenated over the slices."""
    parts = [work(slice(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    return tuple(torch.cat(list(outputs)) for outputs in zip(*parts, strict=True))


# ---------------------------------------------------------------------- the estimate
def json_float(value: float) -> float | None:
    """A float for strict JSON: ``None`` for inf or NaN."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True, eq=False)
class RobustnessEstimate:
    """Per-sample robustness values of one kind, and how they were found.

    ``values`` ``(N,)``: each sample's smallest verified change (``inf`` where no search
    changed the label). ``adversarial``: each sample's point at that change: latent codes for
    r_Z and r_in (g(adversarial) is the image for r_in), images for r_unc; the clean point
    where none was found. ``scale``: the mean L2 norm the values are normalised by, over all
    N samples searched: mean ||z|| for r_Z, mean ||x|| (x = g(z)) for r_in and r_unc.
    """

    quantity: Quantity
    values: Tensor
    adversarial: Tensor
    scale: float
    normalised_by: str
    method: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> Tensor:
        """Which samples some search flipped (a finite value)."""
        return torch.isfinite(self.values)

    @property
    def success_rate(self) -> float:
        """The share of samples with a verified change."""
        return float(self.success.float().mean())

    @property
    def failures(self) -> int:
        """How many samples no search flipped (their value is inf)."""
        return int((~self.success).sum())

    @property
    def median(self) -> float:
        """The median over all samples, failures counted as inf (the lower middle value)."""
        return float(self.values.median())

    @property
    def normalised(self) -> Tensor:
        """Per-sample values divided by :attr:`scale`."""
        return self.values / self.scale

    @property
    def normalised_median(self) -> float:
        """:attr:`median` / :attr:`scale`."""
        return self.median / self.scale

    def as_json(self) -> dict[str, Any]:
        """The summary, JSON-ready (no per-sample tensors; inf as ``None``)."""
        return {
            "quantity": self.quantity,
            "n": len(self.values),
            "found": len(self.values) - self.failures,
            "success_rate": self.success_rate,
            "median": json_float(self.median),
            "normalised_median": json_float(self.normalised_median),
            "scale": self.scale,
            "normalised_by": self.normalised_by,
            "method": self.method,
            "config": self.config,
        }


def _describe(attacks: Sequence[Attack]) -> list[dict[str, Any]]:
    return [{"name": a.name, "params": a.config()} for a in attacks]


def _names(attacks: Sequence[Attack]) -> str:
    return " and ".join(a.name for a in attacks)


# ---------------------------------------------------------------------- r_Z
def default_latent_attacks(latent_dim: int) -> tuple[Attack, ...]:
    """DeepFool (L2, 50 steps) and L2 PGD (20 steps, margin loss, from z) under ``Minimize``
    with budgets up to 2 sqrt(d), bisected 8 times: the latent searches of r_Z."""
    radius = LATENT_RADIUS * math.sqrt(latent_dim)
    pgd = PGD(eps=radius, steps=20, norm="l2", random_start=False, loss="margin")
    return DeepFool(norm="l2"), Minimize(pgd, tolerance=radius / 100, max_steps=8)


def latent_robustness(
    classifier: Classifier,
    generator: nn.Module,
    z: Tensor,
    *,
    attacks: Sequence[Attack] | None = None,
    random_rays: int = 16,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimate:
    """r_Z(z) = min ||r||_2 s.t. f(g(z + r)) != f(g(z)), per sample.

    f o g is wrapped as a :class:`LatentClassifier` on the unbounded latent box, and each of
    ``attacks`` (default :func:`default_latent_attacks`: DeepFool, and PGD under
    ``Minimize``) runs on every sample through the attack base with y = f(g(z)); each success
    r is refined by bisection on the scale t in [0, 1] of z + t r (relative ``tolerance``),
    the smallest change along that direction; per sample the smallest verified ||r||.
    The samples no attack flipped (a generator that saturates leaves gradients with nothing
    to say) then get ``random_rays`` decision-based searches along random latent directions,
    z + t u for t = sqrt(d) / 4, doubling 6 times (up to 16 sqrt(d)), then bisected
    (:func:`ray_search`). Normalised by the mean ||z|| over the samples given.
    """
    d, _ = check_pair(classifier, generator)
    z = check_latents(z, d)
    chosen = default_latent_attacks(d) if attacks is None else attacks
    attacks = _check_attacks(chosen, False, "the latent space")
    _check_refinement(tolerance, max_steps, batch_size)
    model = LatentClassifier(classifier, generator)
    z = model.check_inputs(z, "z")
    ids = torch.arange(len(z), device=z.device)
    rays = Rays(check_int(random_rays, "random_rays", low=0), math.sqrt(d) / 4, 6)

    def work(rows: slice) -> tuple[Tensor, Tensor]:
        return _search(model, z[rows], ids[rows], attacks, (tolerance, max_steps), rays=rays)

    values, points = _by_chunks(len(z), batch_size, work)
    method = (
        f"r_Z(z) = min ||r||_2 s.t. f(g(z + r)) != f(g(z)): {_names(attacks)} on f o g in the "
        "unbounded latent box through brittle's attack base (successes re-verified), each "
        f"refined by bisection on t in [0, 1] along z + t r (relative tolerance {tolerance:g}); "
        f"then, for samples none flipped, {random_rays} random latent rays with bisection; "
        "per sample the smallest verified ||r||_2, inf where none"
    )
    config = {
        "attacks": _describe(attacks),
        "random_rays": random_rays,
        "tolerance": tolerance,
        "max_steps": max_steps,
    }
    scale = float(z.flatten(1).norm(dim=1).mean())
    return RobustnessEstimate("r_Z", values, points, scale, "mean ||z||_2", method, config)


# ---------------------------------------------------------------------- r_in
@dataclass(frozen=True)
class PenaltySearch:
    """The in-distribution search: Carlini & Wagner's penalty method, in latent space.

    For each sample, Adam minimises over latent points w

        ||g(w) - g(z)||_2^2 + c * max(m(w), 0),   m(w) = f_y(g(w)) - max_{j != y} f_j(g(w))

    (f_j the logits, y = f(g(z))) for up to ``steps`` iterations per round, from w = z, with a
    step ``lr * r_Z(z) / sqrt(d)`` per coordinate decaying on a cosine to 0 over the round
    (each step moves w by about ``lr`` times the sample's r_Z). Every iterate whose logits show
    the change is a candidate (the closest in image space kept).

    The constant c is in units of the sample's own scale 2 D^2 / m(z), D the image distance
    of r_Z's solution: the Lagrange multiplier of the linearised problem (min ||J r||^2 s.t.
    m(z) + grad m . r <= 0 has multiplier 2 r_in^2 / m(z) <= 2 D^2 / m(z)). Above the
    multiplier the hinge penalty is exact: the minimiser is the constrained one, on the
    boundary. Over ``binary_steps`` rounds c (from ``initial_const`` such units) is searched
    per sample: a round that changed the label sets upper = c, else lower = c; then
    c = (lower + upper) / 2, or 10 c while upper is infinite; a sample's search ends once
    upper <= 1.1 lower. A sample stops a round when its objective fell by less than 1% over
    the last ceil(steps / 10) iterations.
    """

    steps: int = 100
    binary_steps: int = 6
    lr: float = 0.1
    initial_const: float = 2.0

    def __post_init__(self) -> None:
        check_int(self.steps, "steps")
        check_int(self.binary_steps, "binary_steps")
        check_positive(self.lr, "lr")
        check_positive(self.initial_const, "initial_const")


@dataclass
class _Adam:
    """Adam (Kingma & Ba 2015) on rows of points, each row with its own step size."""

    w: Tensor
    lr: Tensor
    m: Tensor
    v: Tensor

    @classmethod
    def start(cls, w: Tensor, lr: Tensor) -> _Adam:
        return cls(w.clone(), lr, torch.zeros_like(w), torch.zeros_like(w))

    def step(self, grad: Tensor, t: int, decay: float) -> None:
        """Step ``t`` (from 1) with bias correction, the step sizes scaled by ``decay``."""
        b1, b2 = _ADAM_BETAS
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat, v_hat = self.m / (1 - b1**t), self.v / (1 - b2**t)
        lr = broadcast_view(self.lr * decay, self.w)
        self.w = self.w - lr * m_hat / (v_hat.sqrt() + _ADAM_EPS)

    def keep(self, rows: Tensor) -> None:
        self.w, self.lr, self.m, self.v = self.w[rows], self.lr[rows], self.m[rows], self.v[rows]


def _penalty_round(
    model: LatentClassifier,
    problem: tuple[Tensor, Tensor, Tensor],
    rows: Tensor,
    const: Tensor,
    lr: Tensor,
    steps: int,
    best: Closest,
) -> Tensor:
    """One round of :class:`PenaltySearch` on ``rows`` (of ``problem`` = (z, g(z), y)).

    Offers every iterate whose logits show a change to ``best`` (image distance); returns
    per row whether one did.
    """
    z, x, y = problem
    adam = _Adam.start(z[rows], lr)
    pos = torch.arange(len(rows), device=z.device)
    met = torch.zeros(len(rows), dtype=torch.bool, device=z.device)
    checked = torch.full((len(rows),), math.inf, dtype=z.dtype, device=z.device)
    check_every = math.ceil(steps / 10)
    with model.evaluation():
        for t in range(1, steps + 1):
            idx = rows[pos]
            w = adam.w.detach().requires_grad_(True)
            with torch.enable_grad():
                images = model.composite.images(w)
                gap = margin(model.image_classifier.logits(images), y[idx], targeted=False)
                distance = (images - x[idx]).flatten(1).square().sum(1)
                loss = distance + const[pos] * gap.clamp_min(0)
                (grad,) = torch.autograd.grad(loss.sum(), w)
            with torch.no_grad():
                changed = gap.detach() < 0
                met[pos] |= changed
                best.offer(w.detach(), distance.detach().sqrt(), changed, idx)
                adam.step(grad, t, (1 + math.cos(math.pi * (t - 1) / steps)) / 2)
                if t % check_every:
                    continue
                going = (loss.detach() < (1 - _GIVE_UP) * checked).nonzero().squeeze(1)
                checked = loss.detach()[going]
                if not len(going):
                    break
                if len(going) < len(pos):
                    pos = pos[going]
                    adam.keep(going)
    return met


def _penalty_search(
    model: LatentClassifier,
    problem: tuple[Tensor, Tensor, Tensor],
    start: Tensor,
    found: Tensor,
    search: PenaltySearch,
) -> Closest:
    """:class:`PenaltySearch` on the samples ``found`` by r_Z (solutions ``start``):
    candidates (latent points, image distances) seen changed in the loop, not yet verified."""
    z, x, y = problem
    best = Closest.none(z)
    step = torch.where(found, _l2(start, z), math.inf)
    lr = search.lr * step / math.sqrt(z.shape[1])
    with torch.no_grad():
        clean_margin = margin(model.predict_logits(z), y, targeted=False)
    unit = 2 * _l2(model.images(start), x).square() / clean_margin.clamp_min(_TINY_MARGIN)
    const = search.initial_const * unit
    lower, upper = torch.zeros_like(const), torch.full_like(const, math.inf)
    todo = found.nonzero().squeeze(1)
    for _ in range(search.binary_steps):
        if not len(todo):
            break
        c = const[todo]
        met = _penalty_round(model, problem, todo, c, lr[todo], search.steps, best)
        upper[todo] = torch.where(met, torch.minimum(upper[todo], c), upper[todo])
        lower[todo] = torch.where(met, lower[todo], torch.maximum(lower[todo], c))
        bisected = (lower[todo] + upper[todo]) / 2
        const[todo] = torch.where(torch.isfinite(upper[todo]), bisected, c * 10)
        todo = todo[upper[todo] > _BRACKET * lower[todo]]
    return best


def _in_distribution_chunk(
    model: LatentClassifier,
    z: Tensor,
    start: Tensor,
    found: Tensor,
    search: PenaltySearch,
    refinement: tuple[float, int],
) -> tuple[Tensor, Tensor]:
    """r_in on one chunk: r_Z's point, the penalty search's, and their bisections along the
    latent segment from z; per sample the smallest verified image distance."""
    y = model.predict(z)
    x = model.images(z)

    def measure(points: Tensor) -> Tensor:
        return _l2(model.images(points), x)

    best = Closest.none(z)
    candidates = _penalty_search(model, (z, x, y), start, found, search)
    for end, ok in ((start, found), (candidates.points, torch.isfinite(candidates.distance))):
        _offer_refined(best, model, z, end, ok, y, measure, *refinement)
    return best.distance, best.points


def in_distribution_robustness(
    classifier: Classifier,
    generator: nn.Module,
    z: Tensor,
    *,
    latent: RobustnessEstimate | None = None,
    attacks: Sequence[Attack] | None = None,
    search: PenaltySearch | None = None,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimate:
    """r_in(z) = min ||g(z + r) - g(z)||_2 over latent moves r with f(g(z + r)) != f(g(z)).

    Candidates per sample, each verified by the model and refined by bisection along the
    latent segment from z (the image distance measured at the point found): r_Z's solution
    (``latent``, or :func:`latent_robustness` with ``attacks`` run now), so r_in is never
    above the image distance of r_Z's solution; and the :class:`PenaltySearch`'s closest
    point in image space. Per sample the smallest verified image distance; a sample without
    an r_Z solution is inf (the penalty search takes its step size from r_Z). Normalised by
    the mean ||g(z)|| over the samples given.
    """
    d, _ = check_pair(classifier, generator)
    z = check_latents(z, d)
    search = search if search is not None else PenaltySearch()
    _check_refinement(tolerance, max_steps, batch_size)
    if latent is not None and (latent.quantity != "r_Z" or latent.values.shape != (len(z),)):
        raise InputError("latent must be the r_Z estimate of the same z (latent_robustness)")
    if latent is None:
        latent = latent_robustness(
            classifier,
            generator,
            z,
            attacks=attacks,
            tolerance=tolerance,
            max_steps=max_steps,
            batch_size=batch_size,
        )
    model = LatentClassifier(classifier, generator)
    z = model.check_inputs(z, "z")
    start = latent.adversarial.to(z)
    found = latent.success.to(z.device)
    refinement = (tolerance, max_steps)

    def work(rows: slice) -> tuple[Tensor, Tensor]:
        return _in_distribution_chunk(model, z[rows], start[rows], found[rows], search, refinement)

    values, points = _by_chunks(len(z), batch_size, work)
    method = (
        "r_in(z) = min ||g(z + r) - g(z)||_2 s.t. f(g(z + r)) != f(g(z)): per sample the "
        "smallest verified image distance among r_Z's solution and a Carlini-Wagner penalty "
        "search in latent space (Adam on ||g(w) - g(z)||^2 + c max(margin, 0), a search over "
        f"c), each refined by bisection along the latent segment from z (relative tolerance "
        f"{tolerance:g}); inf where r_Z found none"
    )
    config = {
        "latent": latent.config,
        "search": {k: getattr(search, k) for k in ("steps", "binary_steps", "lr", "initial_const")},
        "tolerance": tolerance,
        "max_steps": max_steps,
    }
    scale = float(model.images(z).flatten(1).norm(dim=1).mean())
    return RobustnessEstimate("r_in", values, points, scale, "mean ||g(z)||_2", method, config)


# ---------------------------------------------------------------------- r_unc
def default_unconstrained_attacks(classifier: Classifier) -> tuple[Attack, ...]:
    """DeepFool (L2) and Carlini & Wagner L2 (defaults); DeepFool alone in an unbounded box,
    which C&W's change of variables cannot take."""
    if classifier.bounded:
        return DeepFool(norm="l2"), CarliniWagnerL2()
    return (DeepFool(norm="l2"),)


def unconstrained_robustness(
    classifier: Classifier,
    x: Tensor,
    *,
    attacks: Sequence[Attack] | None = None,
    candidates: Tensor | None = None,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimate:
    """r_unc(x) = min ||r||_2 s.t. f(x + r) != f(x), per sample: the gradient suite's minimal
    attacks, best per sample.

    Each of ``attacks`` (default :func:`default_unconstrained_attacks`: DeepFool and C&W L2)
    runs on every sample through the attack base with y = f(x); each success is refined by
    bisection along the segment from x (inside the box, which is convex). ``candidates``:
    further inputs to consider, one per sample (e.g. the images g(z + r) of an in-distribution
    search: a latent move is an image move, so r_unc <= r_in holds per sample as it does for
    the true values); they count only where the model's label differs there. Per sample the
    smallest verified L2 change. Normalised by the mean ||x|| over the samples given.
    """
    if not isinstance(classifier, Classifier):
        raise InputError(
            f"the classifier must be a brittle.Classifier, got {type(classifier).__name__}"
        )
    x = classifier.check_inputs(x)
    if not len(x):
        raise InputError("x holds no samples")
    if candidates is not None:
        candidates = classifier.check_inputs(candidates, "candidates")
        if candidates.shape != x.shape:
            raise InputError(f"candidates must have the shape of x, {tuple(x.shape)}")
    chosen = default_unconstrained_attacks(classifier) if attacks is None else attacks
    attacks = _check_attacks(chosen, classifier.bounded, "the classifier's box")
    _check_refinement(tolerance, max_steps, batch_size)
    ids = torch.arange(len(x), device=x.device)

    def work(rows: slice) -> tuple[Tensor, Tensor]:
        extra = None if candidates is None else candidates[rows]
        return _search(classifier, x[rows], ids[rows], attacks, (tolerance, max_steps), extra)

    values, points = _by_chunks(len(x), batch_size, work)
    given = " and the candidates given" if candidates is not None else ""
    method = (
        f"r_unc(x) = min ||r||_2 s.t. f(x + r) != f(x): {_names(attacks)}{given} through "
        "brittle's attack base (successes re-verified), each refined by bisection along the "
        f"segment from x (relative tolerance {tolerance:g}); per sample the smallest verified "
        "L2 change, inf where none"
    )
    config = {
        "attacks": _describe(attacks),
        "candidates": candidates is not None,
        "tolerance": tolerance,
        "max_steps": max_steps,
    }
    scale = float(x.flatten(1).norm(dim=1).mean())
    return RobustnessEstimate("r_unc", values, points, scale, "mean ||x||_2", method, config)


# ---------------------------------------------------------------------- all three
@dataclass(frozen=True, eq=False)
class RobustnessEstimates:
    """r_Z, r_in and r_unc on the same generated samples x = g(z)."""

    z: Tensor
    latent: RobustnessEstimate
    in_distribution: RobustnessEstimate
    unconstrained: RobustnessEstimate

    def as_json(self) -> dict[str, Any]:
        """The three summaries and the share of samples where r_unc <= r_in."""
        order = self.unconstrained.values.cpu() <= self.in_distribution.values.cpu()
        return {
            "n": len(self.z),
            "r_Z": self.latent.as_json(),
            "r_in": self.in_distribution.as_json(),
            "r_unc": self.unconstrained.as_json(),
            "share_r_unc_at_most_r_in": float(order.float().mean()),
        }


def estimate_all(
    classifier: Classifier,
    generator: nn.Module,
    n: int,
    seed: int = 0,
    *,
    latent_attacks: Sequence[Attack] | None = None,
    unconstrained_attacks: Sequence[Attack] | None = None,
    search: PenaltySearch | None = None,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimates:
    """r_Z, r_in and r_unc of ``classifier`` at ``n`` samples x = g(z), z ~ N(0, I) drawn
    with ``seed`` (:func:`sample_latents`).

    r_in reuses r_Z's solutions; r_unc also considers the images of r_in's solutions as
    candidates (a latent move is an image move), so r_unc <= r_in per sample.
    """
    d, _ = check_pair(classifier, generator)
    z = sample_latents(n, d, seed)
    options: dict[str, Any] = {
        "tolerance": tolerance,
        "max_steps": max_steps,
        "batch_size": batch_size,
    }
    latent = latent_robustness(classifier, generator, z, attacks=latent_attacks, **options)
    ind = in_distribution_robustness(
        classifier, generator, z, latent=latent, search=search, **options
    )
    model = LatentClassifier(classifier, generator)
    unc = unconstrained_robustness(
        classifier,
        model.images(z),
        attacks=unconstrained_attacks,
        candidates=model.images(ind.adversarial),
        **options,
    )
    return RobustnessEstimates(z, latent, ind, unc)


# ---------------------------------------------------------------------- Theorem 3
def _joint_ascent(
    models: tuple[Classifier, Classifier],
    x: Tensor,
    labels: tuple[Tensor, Tensor],
    start: Tensor,
    eta: float,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """L2 PGD on both models' clamped margins at once; (points, whether both changed).

    Ascends -(max(m_f, 0) + max(m_h, 0)), m the margin of each model's clean label (positive
    while the label holds): a model already fooled stops pulling. alpha = 2.5 eta / steps,
    steps along grad / ||grad||_2, projection onto the eta-ball and the box. A sample stops
    at the first iterate where both labels changed (the logits of its gradient pass).
    """
    f, h = models
    alpha = 2.5 * eta / steps
    out, met = start.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    pos, point = torch.arange(len(x), device=x.device), start
    with f.evaluation(), h.evaluation():
        for _ in range(steps):
            w = point.detach().requires_grad_(True)
            with torch.enable_grad():
                m_f = margin(f.logits(w), labels[0][pos], targeted=False)
                m_h = margin(h.logits(w), labels[1][pos], targeted=False)
                (grad,) = torch.autograd.grad(-(m_f.clamp_min(0) + m_h.clamp_min(0)).sum(), w)
            both = (m_f.detach() < 0) & (m_h.detach() < 0)
            out[pos] = torch.where(broadcast_view(both, w), w.detach(), out[pos])
            met[pos] |= both
            going = (~both).nonzero().squeeze(1)
            if not len(going):
                break
            pos, w, grad = pos[going], w.detach()[going], grad[going]
            stepped = w + alpha * steepest_ascent(grad, Norm.L2)
            point = project(x[pos], stepped, Norm.L2, eta, f.bounds)
    return out, met


def _joint_attack(
    models: tuple[Classifier, Classifier],
    x: Tensor,
    labels: tuple[Tensor, Tensor],
    eta: float,
    settings: tuple[int, int, int],
    ids: Tensor,
) -> Tensor:
    """:func:`_joint_ascent` from x, then from random points of the eta-ball (drawn per
    sample id) on the samples not yet fooled twice; per sample a point that fooled both."""
    steps, restarts, seed = settings
    best, done = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    draw = random_offset(Norm.L2, x[0].numel())
    for restart in range(restarts):
        todo = (~done).nonzero().squeeze(1)
        if not len(todo):
            break
        start = x[todo]
        if restart:
            u = per_sample(seed, ids[todo], ("joint", restart), draw, x.device).to(x.dtype)
            start = models[0].clip(start + eta * u.view_as(start))
        rows = (labels[0][todo], labels[1][todo])
        points, met = _joint_ascent(models, x[todo], rows, start, eta, steps)
        best[todo] = torch.where(broadcast_view(met, points), points, best[todo])
        done[todo] = met
    return best


def common_perturbation_share(
    f: Classifier,
    h: Classifier,
    generator: nn.Module,
    n: int,
    eta: float,
    *,
    seed: int = 0,
    steps: int = 100,
    restarts: int = 1,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Theorem 3 measured: how often one v with ||v||_2 <= eta changes both f's and h's labels.

    At ``n`` samples x = g(z), z ~ N(0, I) (``seed``): ``delta`` = the share where f(x) !=
    h(x) (the theorem's P(f(g(z)) != h(g(z)))), and ``share`` = the share where an attack on
    both at once found such a v (verified: both models' labels at x + v differ from theirs at
    x, ||v|| <= eta). The attack is a small L2 PGD loop on the sum of both models' clamped
    margin losses (:func:`_joint_ascent`), from x and ``restarts - 1`` random starts in the
    ball, in f's box: brittle's PGD judges one model's label, and a module cannot carry two
    labels per sample through an attack that compacts its batch. Compare ``share`` with the
    theorem's lower bound 1 - sqrt(pi/2) exp(-omega^-1(eta)^2 / 2) - 2 delta.
    """
    d, _ = check_pair(f, generator)
    check_pair(h, generator)
    eta = check_positive(eta, "eta")
    settings = (check_int(steps, "steps"), check_int(restarts, "restarts"), seed)
    check_int(batch_size, "batch_size")
    z = sample_latents(n, d, seed)
    x = f.check_inputs(LatentClassifier(f, generator).images(z))
    labels = (f.predict(x), h.predict(x))
    ids = torch.arange(n, device=x.device)

    def work(rows: slice) -> tuple[Tensor]:
        chunk = (labels[0][rows], labels[1][rows])
        return (_joint_attack((f, h), x[rows], chunk, eta, settings, ids[rows]),)

    (points,) = _by_chunks(n, batch_size, work)
    both = (f.predict(points) != labels[0]) & (h.predict(points) != labels[1])
    both &= within_budget(points - x, Norm.L2, eta)
    return {
        "n": n,
        "eta": eta,
        "seed": seed,
        "delta": float((labels[0] != labels[1]).float().mean()),
        "share": float(both.float().mean()),
        "found": int(both.sum()),
        "method": (
            "L2 PGD on -(max(m_f, 0) + max(m_h, 0)) within ||v||_2 <= eta, "
            f"{steps} steps of 2.5 eta / steps, {restarts} start(s) (x, then random in the "
            "ball); a sample counts when both labels at x + v differ from theirs at x"
        ),
    }
