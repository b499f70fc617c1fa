"""r_in(z) = min ||g(z + r) - g(z)||_2 s.t. f(g(z + r)) != f(g(z)): the in-distribution
robustness of Fawzi, Fawzi & Fawzi (NeurIPS 2018), per sample, from r_Z's solutions and a
Carlini-Wagner penalty search in latent space (:class:`PenaltySearch`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from brittle.attacks.base import Attack
from brittle.attacks.cw import margin
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.perturbation import broadcast_view
from brittle.validation import check_positive, check_positive_integer

from .bisection import MAX_BISECTIONS, TOLERANCE
from .candidates import BATCH_SIZE, Closest, by_chunks, l2_distance, offer_refined
from .estimate import RobustnessEstimate
from .estimate_latent import latent_robustness
from .inputs import check_latents, check_pair, check_refinement
from .latent import LatentClassifier

_GIVE_UP = 0.01
"""A sample stops a round of the penalty search once its objective fell by less than this
fraction over the last ceil(steps / 10) iterations (Carlini & Wagner's abort-early)."""
_BRACKET = 1.1
"""The search over the penalty constant ends once upper <= 1.1 * lower."""
_TINY_MARGIN = 1e-6
"""Floor of the clean margin f_y - max_{j != y} f_j in the penalty's unit (a tie is 0)."""


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
        check_positive_integer(self.steps, "steps")
        check_positive_integer(self.binary_steps, "binary_steps")
        check_positive(self.lr, "lr")
        check_positive(self.initial_const, "initial_const")


class _RowAdam:
    """:class:`torch.optim.Adam` on rows of latent points, each row with its own step size.

    Adam's step is blind to a gradient's scale, so a step size per row comes from a change of
    variable: w = origin + scale * u, and Adam with step size ``decay`` on u (gradient
    scale * dL/dw) moves row i of w as Adam with step size scale_i * decay on w would. The
    two differ only in Adam's eps (1e-8), which the change divides by the row's scale. Rows
    leave with :meth:`keep`, their moments with them.
    """

    def __init__(self, origin: Tensor, scale: Tensor) -> None:
        self.origin, self.scale = origin, broadcast_view(scale, origin)
        self._start(torch.zeros_like(origin), None)

    def _start(self, u: Tensor, state: dict[str, Any] | None) -> None:
        self.u = u.requires_grad_(True)
        # one tensor: the single-tensor path has less overhead per step than the default's
        self.optimizer = torch.optim.Adam([self.u], foreach=False)
        if state is not None:
            self.optimizer.load_state_dict(state)

    @property
    def w(self) -> Tensor:
        """The rows' current points."""
        return self.origin + self.scale * self.u.detach()

    def step(self, grad: Tensor, decay: float) -> None:
        """One Adam step, given the loss's gradient at :attr:`w`, step sizes times ``decay``."""
        self.u.grad = grad * self.scale
        self.optimizer.param_groups[0]["lr"] = decay
        self.optimizer.step()

    def keep(self, rows: Tensor) -> None:
        """Go on with the rows ``rows`` only."""
        state = self.optimizer.state_dict()
        moments = state["state"][0]
        for key in ("exp_avg", "exp_avg_sq"):
            moments[key] = moments[key][rows]
        self.origin, self.scale = self.origin[rows], self.scale[rows]
        self._start(self.u.detach()[rows], state)


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
    adam = _RowAdam(z[rows], lr)
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
                adam.step(grad, (1 + math.cos(math.pi * (t - 1) / steps)) / 2)
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
    step = torch.where(found, l2_distance(start, z), math.inf)
    lr = search.lr * step / math.sqrt(z.shape[1])
    with torch.no_grad():
        clean_margin = margin(model.predict_logits(z), y, targeted=False)
    unit = 2 * l2_distance(model.images(start), x).square() / clean_margin.clamp_min(_TINY_MARGIN)
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
        return l2_distance(model.images(points), x)

    best = Closest.none(z)
    candidates = _penalty_search(model, (z, x, y), start, found, search)
    for end, ok in ((start, found), (candidates.points, torch.isfinite(candidates.distance))):
        offer_refined(best, model, z, end, ok, y, measure, *refinement)
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
    check_refinement(tolerance, max_steps, batch_size)
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

    values, points = by_chunks(len(z), batch_size, work)
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
