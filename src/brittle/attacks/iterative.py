"""Iterative gradient attacks: BIM (Kurakin et al. 2016) and PGD (Madry et al. 2018).

Both repeat a projected steepest-ascent step on the loss,

    x_0 = x,  x_{k+1} = Proj_{B_eps(x) ∩ box}(x_k + alpha * s(grad_x J(theta, x_k, y))),

where ``s`` is the unit steepest-ascent direction of the norm: sign for Linf, grad/||grad||_2
for L2 and the sparse L1 direction of :func:`sparse_l1_direction` for L1. Targeted, J is
replaced by -J(theta, x, t). PGD starts from a random point of the ball and may restart.

Early stopping: a fixed-budget attack asks for *any* point of B_eps(x) ∩ box that meets the
goal, so a sample whose iterate already meets it is finished. Its iterate is kept and it costs
no further gradient: each step runs the model forward and backward only on the samples still
active, and the logits of that pass decide which are done (no extra forward pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.losses import LossName, resolve_loss
from brittle.model import Bounds
from brittle.perturbation import broadcast_view, project
from brittle.randomness import Stream
from brittle.threat import Norm

from .base import AttackRun, FixedBudgetAttack
from .fgsm import ALL_GOALS, steepest_ascent
from .params import SEED, STEP_SIZE, STEPS, TARGETED, NormArg, budget, declared, norm_choice, param

SPARSE_L1_FRACTION = 0.01
"""Share of the coordinates an L1 step moves: the top 1% by |gradient| (quantile q = 0.99)."""


def sparse_l1_direction(
    grad: Tensor, x: Tensor, bounds: Bounds, fraction: float = SPARSE_L1_FRACTION
) -> Tensor:
    """Unit L1 step of Sparse L1 Descent (SLIDE, Tramer & Boneh 2019).

        e_i = sign(g_i) / k  for the k = ceil(fraction * d) largest |g_i|,  0 elsewhere,

    after setting g_i = 0 where x_i sits on a bound that g_i pushes past (that coordinate
    cannot move and would waste the step). ``||e||_1 = 1`` unless fewer than k coordinates can
    move. Neither the dense step g/||g||_1 (the budget spread thinly over every pixel) nor the
    steepest one (all of it on the single largest |g_i|) is effective: a step on a small share
    of the largest coordinates is (Tramer & Boneh's observation; see the README's figures).
    """
    low, high = bounds
    blocked = ((x <= low) & (grad < 0)) | ((x >= high) & (grad > 0))
    g = grad.masked_fill(blocked, 0.0).flatten(1)
    k = max(1, math.ceil(fraction * g.shape[1]))
    top = g.abs().topk(k, dim=1).indices
    e = torch.zeros_like(g).scatter_(1, top, g.gather(1, top).sign() / k)
    return e.view_as(grad)


def random_offset(norm: Norm, d: int) -> Callable[[torch.Generator], Tensor]:
    """One sample's random point of the unit ball of ``norm`` in R^d, from its generator.

    Linf: uniform in the cube. L2: uniform in the ball, a Gaussian direction normalised to
    unit length with radius U^(1/d). L1: uniform in the cross-polytope, random signs times the
    first d of d+1 Exp(1) variables divided by their sum (a Dirichlet(1, ..., 1) point).
    """

    def draw(g: torch.Generator) -> Tensor:
        if norm is Norm.LINF:
            return torch.rand(d, generator=g) * 2 - 1
        if norm is Norm.L2:
            direction = torch.randn(d, generator=g)
            direction /= direction.norm().clamp_min(1e-12)
            return direction * torch.rand(1, generator=g) ** (1.0 / d)
        mass = torch.empty(d + 1).exponential_(generator=g)
        signs = torch.randint(0, 2, (d,), generator=g) * 2 - 1
        return signs * mass[:d] / mass.sum()

    return draw


def ball_points(run: AttackRun, idx: Tensor, norm: Norm, stream: Stream) -> Tensor:
    """One random point of the unit ball of ``norm`` in R^d per row ``idx`` ``(len(idx), d)``
    (float64), from each sample's uniforms of ``stream``, drawn on the device; the
    distributions of :func:`random_offset`: uniform in the cube (Linf), a Gaussian direction
    (Box-Muller) with radius U^(1/d) (L2), random signs times a Dirichlet(1, ..., 1) point
    from d + 1 Exp(1) variables -log(1 - U) (L1)."""
    d = run.x[0].numel()
    if norm is Norm.LINF:
        return run.uniform(stream, d, idx) * 2 - 1
    if norm is Norm.L2:  # the radius is the uniform after those the normals took
        direction = run.normal(stream, d, idx)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return direction * run.uniform(stream, 1, idx, start=d + d % 2) ** (1.0 / d)
    u = run.uniform(stream, 2 * d + 1, idx)
    mass = -torch.log1p(-u[:, : d + 1])
    signs = torch.where(u[:, d + 1 :] < 0.5, -1.0, 1.0)
    return signs * mass[:, :d] / mass.sum(1, keepdim=True)


def random_start(run: AttackRun, idx: Tensor, norm: Norm, restart: int) -> Tensor:
    """A random point of B_eps(x) for the rows ``idx``, clipped to the box (clipping never
    leaves the ball). Each sample's point comes from its own stream (seed, id, restart)."""
    x = run.x[idx]
    u = ball_points(run, idx, norm, ("start", norm.value, restart))
    return run.access.clip(x + run.eps_view(idx) * u.to(x.dtype).view_as(x))


@dataclass
class Active:
    """The samples an iterative attack still works on, compacted; one row each.

    ``pos`` is each row's position among the samples the ascent started with, ``idx`` its row
    in ``run.x``; ``eps`` and ``alpha`` are shaped to broadcast over inputs. ``memory`` holds
    per-sample state a step carries along (MI-FGSM's accumulated gradient).
    """

    pos: Tensor
    idx: Tensor
    x0: Tensor
    eps: Tensor
    alpha: Tensor
    x: Tensor
    memory: Tensor | None = None

    @classmethod
    def start(
        cls, run: AttackRun, idx: Tensor, x: Tensor, step_size: float | None, relative: float
    ) -> Active:
        """Rows ``idx`` of ``run`` starting at ``x``; alpha is ``step_size`` or relative * eps."""
        eps = run.eps_view(idx)
        alpha = eps * relative if step_size is None else torch.full_like(eps, step_size)
        pos = torch.arange(len(idx), device=idx.device)
        return cls(pos, idx, run.x[idx], eps, alpha, x)

    def select(self, keep: Tensor) -> Active:
        """The rows ``keep`` (integer indices) of every field."""
        return Active(
            self.pos[keep],
            self.idx[keep],
            self.x0[keep],
            self.eps[keep],
            self.alpha[keep],
            self.x[keep],
            None if self.memory is None else self.memory[keep],
        )


Step = Callable[[Active, Tensor], Tensor]
"""Maps the active samples and their loss gradient to the next, unprojected, iterates."""


def lp_step(norm: Norm, bounds: Bounds) -> Step:
    """x_k + alpha * s(grad): s is sign (Linf), grad/||grad||_2 (L2) or sparse L1 (L1)."""

    def step(active: Active, grad: Tensor) -> Tensor:
        if norm is Norm.L1:
            direction = sparse_l1_direction(grad, active.x, bounds)
        else:
            direction = steepest_ascent(grad, norm)
        return active.x + active.alpha * direction

    return step


def ascend(
    run: AttackRun,
    active: Active,
    steps: int,
    step: Step,
    norm: Norm,
    clean_start: bool = False,
    loss: LossName = "ce",
    early_stop: bool = True,
) -> tuple[Tensor, Tensor]:
    """Run ``steps`` projected ascent steps on ``loss`` with per-sample early stopping.

    Returns the final iterate of each starting row (in the order of ``active``) and whether it
    met the goal on the way (checked on the logits of each gradient pass; the last iterate is
    not evaluated). With ``clean_start`` the iterates start at ``run.x`` itself, and the first
    pass's logits are kept as ``run.clean_logits``. One host sync per step: the count of
    samples still active. Without ``early_stop`` every row takes all ``steps`` (the highest
    loss in the ball, what adversarial training wants) and no flag is set.
    """
    bounds = run.access.bounds
    out = torch.empty_like(active.x)
    met = torch.zeros(len(active.idx), dtype=torch.bool, device=active.x.device)
    for k in range(steps):
        grad, logits = run.loss_gradient(active.x, active.idx, loss)
        if clean_start and k == 0:
            run.clean_scores = logits
        if not early_stop:
            active.x = project(active.x0, step(active, grad), norm, active.eps.flatten(), bounds)
            continue
        done = run.goal_met(logits, active.idx)
        left = len(done) - int(done.sum())
        if left < len(done):
            order = torch.sort(done.to(torch.uint8), stable=True).indices  # active rows first
            finished = active.pos[order[left:]]
            out[finished] = active.x[order[left:]]
            met[finished] = True
            if left == 0:
                return out, met
            active, grad = active.select(order[:left]), grad[order[:left]]
        x_next = step(active, grad)
        active.x = project(active.x0, x_next, norm, active.eps.flatten(), bounds)
    out[active.pos] = active.x
    return out, met


def objective(run: AttackRun, logits: Tensor, idx: Tensor, loss: LossName = "ce") -> Tensor:
    """Per-sample loss the attack ascends: L(f(x), y), or -L(f(x), t) when targeted."""
    value = resolve_loss(loss)(logits, run.labels[idx])
    return -value if run.targeted else value


class ProjectedAscent(FixedBudgetAttack):
    """What PGD and BIM share: ``steps`` projected ascent steps from a start, restarts.

    Subclasses declare the parameters; those they leave out keep these values (BIM: no random
    start, one run, the cross-entropy, early stopping).
    """

    goals = ALL_GOALS
    norms = frozenset({Norm.LINF, Norm.L2, Norm.L1})
    relative_step: ClassVar[float] = 2.5
    """Default alpha = relative_step * eps / steps."""

    steps: int
    step_size: float | None
    random_start: bool = False
    restarts: int = 1
    loss: LossName = "ce"
    early_stop: bool = True

    def _ascend(self, run: AttackRun, idx: Tensor, restart: int) -> tuple[Tensor, Tensor]:
        """One run from a fresh start on rows ``idx``: final iterates and goal-met flags."""
        x0 = random_start(run, idx, self.norm, restart) if self.random_start else run.x[idx]
        active = Active.start(run, idx, x0, self.step_size, self.relative_step / self.steps)
        step = lp_step(self.norm, run.access.bounds)
        return ascend(
            run,
            active,
            self.steps,
            step,
            self.norm,
            not self.random_start,
            self.loss,
            self.early_stop,
        )

    def _run(self, run: AttackRun) -> Tensor:
        todo = torch.arange(len(run.x), device=run.x.device)
        if self.restarts == 1:
            return self._ascend(run, todo, 0)[0]
        best = run.x.clone()
        best_loss = torch.full((len(run.x),), -math.inf, dtype=run.x.dtype, device=run.x.device)
        for restart in range(self.restarts):
            x_adv, success = self._ascend(run, todo, restart)
            loss = self._final_loss(run, x_adv, todo, success)
            better = success | (loss > best_loss[todo])
            best[todo] = torch.where(broadcast_view(better, x_adv), x_adv, best[todo])
            best_loss[todo] = torch.where(better, loss, best_loss[todo])
            todo = todo[~success]
            if not len(todo):
                break
        return best

    def _final_loss(self, run: AttackRun, x_adv: Tensor, idx: Tensor, success: Tensor) -> Tensor:
        """Evaluate the last iterates of rows ``idx`` that have not met the goal (one query).

        Updates ``success`` in place with their verdict and returns every row's loss
        (``inf`` for rows that met the goal during the ascent).
        """
        loss = torch.full(success.shape, math.inf, dtype=x_adv.dtype, device=x_adv.device)
        unmet = (~success).nonzero().squeeze(1)
        if len(unmet):
            logits = run.access.logits(x_adv[unmet], idx[unmet])
            success[unmet] = run.goal_met(logits, idx[unmet])
            loss[unmet] = objective(run, logits, idx[unmet], self.loss)
        return loss


@declared
class PGD(ProjectedAscent):
    """Projected gradient descent with random start and restarts (Madry et al. 2018).

        x_0 = Proj_box(x + u), u uniform in B_eps,
        x_{k+1} = Proj_{B_eps(x) ∩ box}(x_k + alpha * s(grad_x J(theta, x_k, y)))

    ``s`` is sign for Linf, grad/||grad||_2 for L2 and the sparse L1 direction of Tramer &
    Boneh 2019 for L1 (see :func:`sparse_l1_direction`). J is the cross-entropy by default;
    ``loss="margin"`` ascends max_{j != y} z_j - z_y on the logits (Carlini & Wagner's, which
    a saturated softmax cannot mask) and ``"dlr"`` Croce & Hein's ratio. ``step_size`` is alpha in absolute
    units; when ``None``, alpha = 2.5 * eps / steps of each sample's own eps (so a per-sample
    eps override is respected). ``restarts`` reruns the attack from new random starts on the
    samples not yet fooled and keeps, per sample, a success over a failure and among failures
    the point of higher loss. Samples that meet the goal stop early (see the module
    docstring); ``early_stop=False`` runs every sample for all ``steps`` instead, as
    adversarial training does (Madry et al. train on the end of the ascent). Each sample's
    random starts are drawn from its own stream, seeded by
    (``seed``, its id, the restart): the same sample gets the same starts in any batch.
    """

    eps: float = budget()
    steps: int = param(default=40, help="Iterations.", low=1)
    step_size: float | None = STEP_SIZE
    norm: NormArg = norm_choice("linf", ("linf", "l2", "l1"))
    random_start: bool = param(default=True, help="Start from a random point of the ball.")
    restarts: int = param(
        default=1, help="Runs from new random starts, best kept per sample.", low=1
    )
    loss: LossName = param(default="ce", help="Loss ascended on the logits.")
    early_stop: bool = param(default=True, help="Stop each sample once it meets the goal.")
    targeted: bool = TARGETED
    seed: int = SEED

    def _configure(self, **values: Any) -> None:
        super()._configure(**values)
        if self.restarts > 1 and not self.random_start:
            raise InputError(
                "PGD: restarts > 1 needs random_start=True: each restart would repeat the first"
            )


@declared
class BIM(ProjectedAscent):
    """Basic iterative method (Kurakin, Goodfellow & Bengio 2016).

        x_0 = x,  x_{k+1} = Proj_{B_eps(x) ∩ box}(x_k + alpha * s(grad_x J(theta, x_k, y)))

    PGD without random start or restarts: deterministic. ``step_size`` is alpha in absolute
    units; when ``None``, alpha = 1.25 * eps / steps of each sample's own eps, Kurakin's choice
    (alpha = 1/255 for min(eps + 4, 1.25 eps) steps, eps in pixel levels), so the steps can
    reach the boundary of the ball with some slack. Norms and early stopping as in :class:`PGD`.
    """

    eps: float = budget()
    steps: int = STEPS
    step_size: float | None = STEP_SIZE
    norm: NormArg = norm_choice("linf", ("linf", "l2", "l1"))
    targeted: bool = TARGETED
    relative_step: ClassVar[float] = 1.25
