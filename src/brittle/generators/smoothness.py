r"""How smooth a generator is: its Lipschitz constant and its modulus of continuity.

A generator ``g: R^d -> R^D`` has modulus of continuity ``omega`` when, for all ``z, z'``,

    ||g(z) - g(z')||_2 <= omega(||z - z'||_2),

and is ``L``-Lipschitz when ``omega(t) = L t`` works, i.e. ``L >= ||g(z) - g(z')|| / ||z - z'||``
for every pair. For a differentiable ``g``, the smallest such ``L`` is the largest spectral norm
of its Jacobian, ``L = sup_z ||J_g(z)||_2`` with ``J_g(z)`` the ``D x d`` matrix of partial
derivatives. The Fawzi et al. (2018) bounds use ``omega^{-1}``, or ``L``, of the generator.

Neither can be computed exactly for a neural network; this module estimates them from below:

- :func:`pairwise_lipschitz`: the ratios ``||g(z) - g(z')|| / ||z - z'||`` of sampled pairs;
- :func:`jacobian_spectral_norm`: ``||J_g(z)||_2`` at given points, by power iteration on
  ``J^T J`` with Jacobian-vector (JVP) and vector-Jacobian (VJP) products, never forming J;
- :func:`lipschitz_ascent`: gradient ascent on ``z`` of that spectral norm, from several starts;
- :func:`estimate_lipschitz`: the largest of the three, with how it was found;
- :func:`modulus_of_continuity`: the empirical ``omega(delta)``, the largest
  ``||g(z) - g(z')||`` of sampled pairs at distance ``delta``.

Every figure is attained by some pair or some unit vector, so it never exceeds the true
constant; it may fall short of it where sampling misses the steepest region. Work is batched
and stays on the generator's device; the generator runs in eval mode (restored after), where
its rows are independent, which the batched Jacobian products rely on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.validation import check_positive, check_positive_integer

from .base import Generator

DEFAULT_SCALES = (0.01, 0.1, 1.0, 4.0)
"""The distances ``||z - z'||`` of :func:`pairwise_lipschitz`'s pairs: small offsets probe the
local slope, large ones (``sqrt(2 d)`` is the typical distance of two independent draws for
``d = 8``) the slope between far samples."""
QUANTILES = (0.5, 0.9, 0.99)
"""The quantiles of the pairwise ratios a report shows beside their maximum."""


@dataclass(frozen=True)
class PairwiseRatios:
    """The ratios ``||g(z) - g(z')|| / ||z - z'||`` of sampled pairs: ``ratios[s, i]`` for pair
    ``i`` at distance ``scales[s]`` (on the CPU)."""

    scales: tuple[float, ...]
    ratios: Tensor

    @property
    def max(self) -> float:
        """The largest ratio found: a lower bound on the Lipschitz constant."""
        return float(self.ratios.max())

    def as_json(self) -> dict[str, Any]:
        """The largest ratio, overall and per distance, and the quantiles of all ratios."""
        flat = self.ratios.flatten().double()
        quantiles = torch.quantile(flat, torch.tensor(QUANTILES, dtype=flat.dtype))
        return {
            "max": self.max,
            "n_pairs": self.ratios.shape[1],
            "scales": list(self.scales),
            "max_per_scale": self.ratios.amax(1).tolist(),
            "median_per_scale": self.ratios.median(1).values.tolist(),
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        }


class Ascent(NamedTuple):
    """What :func:`lipschitz_ascent` found from each start: the largest spectral norm of the
    Jacobian ``sigma`` ``(n_starts,)`` and the point ``z`` ``(n_starts, d)`` where it is."""

    sigma: Tensor
    z: Tensor


@dataclass(frozen=True)
class LipschitzEstimate:
    """An estimate of a generator's Lipschitz constant: ``lipschitz``, the largest of the
    methods' figures (``pairwise``, ``jacobian``, ``ascent``), and ``method``, how they were
    found; the settings are kept. Each figure is a lower bound on the true constant."""

    lipschitz: float
    pairwise: float
    jacobian: float
    ascent: float
    method: str
    n_pairs: int
    n_points: int
    n_starts: int
    steps: int
    iters: int
    seed: int
    pairwise_ratios: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)


def pairwise_lipschitz(
    gen: Generator,
    n_pairs: int = 1000,
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    batch_size: int = 1000,
) -> PairwiseRatios:
    """``||g(z) - g(z')|| / ||z - z'||`` for ``n_pairs`` pairs at each distance of ``scales``.

    ``z ~ N(0, I_d)`` and ``z' = z + t u`` with ``u`` uniform on the unit sphere, so
    ``||z - z'|| = t`` (the ratio divides by the distance as computed). The largest ratio
    ``max_i ||g(z_i) - g(z'_i)|| / ||z_i - z'_i||`` is a lower bound on the Lipschitz constant.
    """
    distances = _distances(scales, "scales")
    dz, dx = _pairs(gen, distances, n_pairs, seed, batch_size)
    return PairwiseRatios(tuple(float(t) for t in scales), (dx / dz).cpu())


def modulus_of_continuity(
    gen: Generator,
    deltas: Sequence[float],
    n_pairs: int = 1000,
    seed: int = 0,
    batch_size: int = 1000,
) -> tuple[Tensor, Tensor]:
    """The empirical modulus of continuity ``omega(delta) = max_i ||g(z_i) - g(z_i + delta u_i)||``
    over ``n_pairs`` pairs at each distance ``delta``: ``z_i ~ N(0, I_d)``, ``u_i`` uniform on
    the unit sphere.

    Returns ``(deltas, omega)``, float32 CPU tensors. A true modulus satisfies
    ``||g(z) - g(z')|| <= omega(||z - z'||)``; an ``L``-Lipschitz ``g`` has ``omega(t) <= L t``,
    so ``L t`` is an upper envelope of this curve when ``L`` is right.
    """
    distances = _distances(deltas, "deltas")
    _, dx = _pairs(gen, distances, n_pairs, seed, batch_size)
    return distances.cpu(), dx.amax(1).cpu()


def jacobian_spectral_norm(gen: Generator, z: Tensor, iters: int = 30, seed: int = 0) -> Tensor:
    """``||J_g(z_i)||_2``, the largest singular value of the Jacobian of ``g`` at each row of
    ``z`` ``(N, d)``, by ``iters`` steps of power iteration on ``J^T J`` (see
    :func:`power_iteration`) from a random start drawn with ``seed``. Returns ``(N,)`` on
    the generator's device; each value is ``||J v||`` for a unit ``v``, so it never exceeds the
    true norm and converges to it (at the rate ``(sigma_2 / sigma_1)^2`` per step)."""
    z = _check_latents(gen, z)
    check_positive_integer(iters, "iters")
    draws = torch.Generator(device=z.device).manual_seed(seed)
    with _evaluating(gen):
        sigma, _ = power_iteration(
            gen, z, _unit(torch.randn(z.shape, generator=draws, device=z.device)), iters
        )
    return sigma


def power_iteration(gen: Generator, z: Tensor, v: Tensor, iters: int) -> tuple[Tensor, Tensor]:
    """``iters`` steps ``v <- J^T J v / ||J^T J v||`` from unit rows ``v`` ``(N, d)``, batched over
    the rows of ``z`` (``J v`` by a JVP, ``J^T u`` by a VJP); returns ``(||J v||, v)``."""
    pullback = torch.func.vjp(gen, z)[1]
    for _ in range(iters):
        (back,) = pullback(_push(gen, z, v))
        v = _unit(back)
    return _push(gen, z, v).flatten(1).norm(dim=1), v


def lipschitz_ascent(
    gen: Generator,
    n_starts: int = 16,
    steps: int = 100,
    *,
    step_size: float = 0.05,
    iters: int = 5,
    seed: int = 0,
    starts: Tensor | None = None,
) -> Ascent:
    """Gradient ascent on ``z`` of ``sigma(z) = ||J_g(z)||_2`` from ``n_starts`` points
    ``z ~ N(0, I_d)``, or from the rows of ``starts`` ``(n, d)`` when given.

    Each step moves every start by ``step_size * (1 - k / steps)`` (a linearly decaying
    length) along the normalised gradient of ``||J_g(z) v||``, where ``v`` is the current top
    right singular vector (so, by Danskin's theorem, the gradient of ``sigma``), then refreshes
    ``v`` with ``iters`` warm-started power iterations. Every move is taken, even one that
    lowers ``sigma``: the norm of a ReLU network's Jacobian is rough in ``z``, full of small
    local maxima that a strictly increasing search stops at, so the walk goes on and the best
    point of each start is kept. Starts are run in one batch; the norm at each best point is
    recomputed with 30 fresh power iterations.
    """
    for value, name in ((n_starts, "n_starts"), (steps, "steps"), (iters, "iters")):
        check_positive_integer(value, name)
    check_positive(step_size, "step_size")
    device = gen.device
    draws = torch.Generator(device=device).manual_seed(seed)
    if starts is None:
        z = torch.randn(n_starts, gen.latent_dim, generator=draws, device=device)
    else:
        z = _check_latents(gen, starts)
    with _evaluating(gen):
        sigma, v = power_iteration(
            gen, z, _unit(torch.randn(z.shape, generator=draws, device=device)), 30
        )
        best, best_z = sigma, z
        for k in range(steps):
            z = z + step_size * (1 - k / steps) * _unit(_slope(gen, z, v))
            sigma, v = power_iteration(gen, z, v, iters)
            better = sigma > best
            best, best_z = torch.where(better, sigma, best), torch.where(better[:, None], z, best_z)
    return Ascent(jacobian_spectral_norm(gen, best_z, 30, seed), best_z)


def estimate_lipschitz(
    gen: Generator,
    *,
    n_pairs: int = 1000,
    n_points: int = 1000,
    n_starts: int = 16,
    steps: int = 100,
    iters: int = 30,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
) -> LipschitzEstimate:
    """The Lipschitz constant of ``g`` estimated as the largest of :func:`pairwise_lipschitz`
    (``n_pairs`` pairs per distance of ``scales``), :func:`jacobian_spectral_norm` at
    ``n_points`` points ``z ~ N(0, I_d)`` (``iters`` power iterations) and
    :func:`lipschitz_ascent` for ``steps`` steps from the ``n_starts`` of those points where
    the norm is largest. All draws follow from ``seed``."""
    check_positive_integer(n_points, "n_points")
    pairs = pairwise_lipschitz(gen, n_pairs, scales=scales, seed=seed)
    points = torch.randn(
        n_points,
        gen.latent_dim,
        generator=torch.Generator(device=gen.device).manual_seed(seed + 1),
        device=gen.device,
    )
    norms = jacobian_spectral_norm(gen, points, iters, seed)
    steepest = points[norms.topk(min(n_starts, n_points)).indices]
    ascent = float(lipschitz_ascent(gen, n_starts, steps, seed=seed, starts=steepest).sigma.max())
    jacobian = float(norms.max())
    shown = ", ".join(f"{t:g}" for t in pairs.scales)
    method = (
        "L is the largest of three estimates of the Lipschitz constant of g in the L2 norms, "
        "each a lower bound on it (sampling can miss the steepest region; none is a "
        f"certificate): (1) the largest ratio ||g(z) - g(z')|| / ||z - z'|| over {n_pairs} "
        f"pairs at each distance t in {{{shown}}}, z ~ N(0, I) and z' = z + t u with u uniform "
        f"on the unit sphere: {pairs.max:.4g}; (2) the largest spectral norm of the Jacobian "
        f"of g at {n_points} points z ~ N(0, I), by {iters} power iterations on J^T J with "
        f"JVPs and VJPs: {jacobian:.4g}; (3) gradient ascent of that spectral norm on z for "
        f"{steps} steps from the {n_starts} points of (2) where it is largest: {ascent:.4g}"
    )
    return LipschitzEstimate(
        lipschitz=max(pairs.max, jacobian, ascent),
        pairwise=pairs.max,
        jacobian=jacobian,
        ascent=ascent,
        method=method,
        n_pairs=n_pairs,
        n_points=n_points,
        n_starts=n_starts,
        steps=steps,
        iters=iters,
        seed=seed,
        pairwise_ratios=pairs.as_json(),
    )


def _pairs(
    gen: Generator, distances: Tensor, n: int, seed: int, batch_size: int
) -> tuple[Tensor, Tensor]:
    """``(||z - z'||, ||g(z) - g(z')||)``, each ``(len(distances), n)``, for ``n`` pairs at
    each distance: ``z ~ N(0, I)``, ``z' = z + t u``, ``u`` uniform on the unit sphere."""
    check_positive_integer(n, "n_pairs")
    check_positive_integer(batch_size, "batch_size")
    device = gen.device
    draws = torch.Generator(device=device).manual_seed(seed)
    shape = (len(distances), n, gen.latent_dim)
    z = torch.randn(shape, generator=draws, device=device)
    far = z + distances.to(device)[:, None, None] * _unit(
        torch.randn(shape, generator=draws, device=device)
    )
    z, far = z.flatten(0, 1), far.flatten(0, 1)
    with _evaluating(gen):
        dx = torch.cat(
            [
                (gen(a) - gen(b)).flatten(1).norm(dim=1)
                for a, b in zip(z.split(batch_size), far.split(batch_size), strict=True)
            ]
        )
    return (z - far).norm(dim=1).view(len(distances), n), dx.view(len(distances), n)


def _slope(gen: Generator, z: Tensor, v: Tensor) -> Tensor:
    """The gradient in ``z`` of ``||J_g(z) v||`` for each row (reverse over forward mode)."""
    slope: Tensor = torch.func.grad(lambda p: _push(gen, p, v).flatten(1).norm(dim=1).sum())(z)
    return slope


def _push(gen: Generator, z: Tensor, v: Tensor) -> Tensor:
    """``J_g(z) v`` for each row, by forward-mode differentiation (a JVP)."""
    tangent: Tensor = torch.func.jvp(gen, (z,), (v,))[1]
    return tangent


def _unit(v: Tensor) -> Tensor:
    """The rows of ``v`` (any trailing shape: along the last axis) scaled to unit L2 norm."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


@contextmanager
def _evaluating(gen: Generator) -> Iterator[None]:
    """``gen`` in eval mode inside the block, its previous mode restored after, and no graph
    of its parameters built (the ``torch.func`` transforms still differentiate in ``z``)."""
    was_training = gen.training
    gen.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        gen.train(was_training)


def _check_latents(gen: Generator, z: Tensor) -> Tensor:
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != gen.latent_dim or len(z) == 0:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise InputError(f"z must be a non-empty batch (N, {gen.latent_dim}) of latents, got {got}")
    if not z.is_floating_point() or not bool(torch.isfinite(z).all()):
        raise InputError("z must hold finite floating-point values")
    return z.to(gen.device)


def _distances(values: Sequence[float], name: str) -> Tensor:
    distances = torch.as_tensor([float(t) for t in values], dtype=torch.float32)
    if len(distances) == 0 or not bool(((distances > 0) & torch.isfinite(distances)).all()):
        raise InputError(
            f"{name} must be a non-empty list of positive finite distances, got {values!r}"
        )
    return distances
