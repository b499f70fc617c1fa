"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016): step to the nearest linearised
decision boundary until the label changes; an estimate of the minimal perturbation r_unc."""

from __future__ import annotations

import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.model import box_scale
from brittle.perturbation import broadcast_view
from brittle.threat import Goal, Norm

from .base import AttackRun, MinimizationAttack
from .params import NormArg, budget, declared, norm_choice, param

_TINY = 1e-4
"""Added to each step's length, as a fraction of the box width (its mean width per feature;
1 in an unbounded box), so that it lands strictly past the linearised boundary (the paper's
code and Foolbox add 1e-4 in [0, 1])."""
_MIN_NORM = 1e-12
"""Floor of ||w'_k||_q: a zero gradient gives a zero step, never a division by zero."""


def candidate_classes(clean_logits: Tensor, y: Tensor, count: int) -> Tensor:
    """The ``count`` classes with the largest clean logits, the label excluded: ``(N, count)``."""
    others = clean_logits.scatter(1, y[:, None], float("-inf"))
    return others.topk(min(count, clean_logits.shape[1] - 1), dim=1).indices


def linearise(
    access: ModelAccess, x: Tensor, y: Tensor, classes: Tensor, idx: Tensor
) -> tuple[Tensor, Tensor]:
    """f'_k = f_k(x) - f_y(x) ``(M, C)`` and w'_k = grad_x f'_k ``(C, M, *x.shape[1:])``.

    The ``C`` vector-Jacobian products of the logit differences, from the model access
    (one forward pass, ``C`` gradients).
    """
    k = access.num_classes
    vectors = torch.nn.functional.one_hot(classes, k) - torch.nn.functional.one_hot(y, k)[:, None]
    w, logits = access.vjp(x, vectors.to(x.dtype), idx)
    diff = logits.gather(1, classes) - logits.gather(1, y[:, None])
    return diff, w.transpose(0, 1)


def overshot(x: Tensor, r_tot: Tensor, scale: float, access: ModelAccess) -> Tensor:
    """The point DeepFool checks and returns: clip(x + (1 + overshoot) * r_tot)."""
    return access.clip(x + scale * r_tot)


def deepfool_step(f: Tensor, w: Tensor, q: int, tiny: float) -> Tensor:
    """The step to the closest linearised boundary in the l_p norm dual to ``q`` (section 3.2).

        l = argmin_k |f'_k| / ||w'_k||_q
        r = |f'_l| / ||w'_l||_q^q * |w'_l|^(q-1) * sign(w'_l)

    lengthened by ``tiny`` (in the l_p norm: r's direction |w'_l|^(q-1) sign(w'_l) /
    ||w'_l||_q^(q-1) has unit l_p norm) so that it lands strictly past the boundary.
    ``f``: ``(M, C)`` logit differences; ``w``: ``(C, M, ...)`` their gradients.
    """
    size = w.flatten(2).norm(p=q, dim=2).T.clamp_min(_MIN_NORM)  # (M, C)
    distance = f.abs() / size
    closest = distance.argmin(1)
    rows = torch.arange(len(closest), device=f.device)
    w_l = w[closest, rows]
    scale = (distance[rows, closest] + tiny) / size[rows, closest].pow(q - 1)
    return broadcast_view(scale, w_l) * w_l.abs().pow(q - 1) * w_l.sign()


@declared
class DeepFool(MinimizationAttack):
    """DeepFool, untargeted, in L2 or Linf (Moosavi-Dezfooli et al. 2016, Algorithm 2, section 3.2).

    At the current point x_i, for each candidate class k (the ``candidates`` classes with the
    largest clean logits, the label y excluded) the classifier is linearised:
        f'_k = f_k(x_i) - f_y(x_i),    w'_k = grad_x f_k(x_i) - grad_x f_y(x_i)
    and the step goes to the closest linearised boundary, with q the dual norm (q = 2 for L2,
    q = 1 for Linf):
        l   = argmin_k |f'_k| / ||w'_k||_q
        r_i = |f'_l| / ||w'_l||_q^q * |w'_l|^(q-1) * sign(w'_l)
    that is r_i = |f'_l| / ||w'_l||_2^2 * w'_l (L2) and r_i = |f'_l| / ||w'_l||_1 * sign(w'_l)
    (Linf), lengthened by 1e-4 of the box width so that it lands strictly past the linearised
    boundary. The steps add up to r_tot = sum_i r_i and, as in the paper, the overshoot
    multiplies the *total*:
        x_{i+1} = clip(x + (1 + overshoot) * r_tot)
    which is both the next linearisation point and the returned input (as in the paper's code
    and Foolbox: the iterates settle onto the boundary, and the result lies just past it,
    closer than (1 + overshoot) times the boundary's distance). A sample stops as soon
    as x_{i+1} is misclassified (checked there, with the overshoot applied) or after ``steps``
    iterations; later iterations only run the samples still going.

    Counting, per sample and iteration: ``C`` gradient evaluations (the vector-Jacobian
    products of the ``C`` logit differences) and two queries (the forward pass that is
    differentiated, and the check at x_{i+1}); plus one query for the clean logits. It works
    in unbounded boxes too (the 1e-4 lengthening is then in absolute units).

    ``eps`` optionally caps the result: the base class projects it onto the eps-ball, and a
    sample whose DeepFool perturbation is larger then fails and is returned unchanged.
    """

    goals = frozenset({Goal.UNTARGETED})
    norms = frozenset({Norm.L2, Norm.LINF})
    norm: NormArg = norm_choice("l2", ("l2", "linf"))
    steps: int = param(default=50, help="Iterations.", low=1)
    overshoot: float = param(default=0.02, help="Overshoot on the total perturbation.", low=0.0)
    candidates: int = param(default=10, help="Candidate classes (largest clean logits).", low=1)
    eps: float | None = budget(default=None)

    def _run(self, run: AttackRun) -> Tensor:
        access, x, y = run.access, run.x, run.y
        q = 2 if self.norm is Norm.L2 else 1
        scale, tiny = 1.0 + self.overshoot, _TINY * box_scale(access.bounds)
        run.clean_scores = access.logits(x)
        classes = candidate_classes(run.clean_scores, y, self.candidates)
        r_tot = torch.zeros_like(x)
        active = (~run.goal_met(run.clean_scores)).nonzero().squeeze(1)
        for _ in range(self.steps):
            if not len(active):
                break
            point = overshot(x[active], r_tot[active], scale, access)
            f, w = linearise(access, point, y[active], classes[active], active)
            r_tot[active] += deepfool_step(f, w, q, tiny)
            logits = access.logits(overshot(x[active], r_tot[active], scale, access), active)
            active = active[~run.goal_met(logits, active)]  # the one host sync per iteration
        return overshot(x, r_tot, scale, access)
