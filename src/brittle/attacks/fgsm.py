"""The fast gradient (sign) method of Goodfellow, Shlens & Szegedy (ICLR 2015, section 4)."""

from __future__ import annotations

from torch import Tensor

from brittle.perturbation import broadcast_view
from brittle.threat import Goal, Norm

from .base import AttackRun, FixedBudgetAttack
from .params import TARGETED, NormArg, budget, declared, norm_choice

ALL_GOALS = frozenset(Goal)
"""Loss-ascent attacks judge every goal by the criterion: confidence reduction included."""


def steepest_ascent(grad: Tensor, norm: Norm) -> Tensor:
    """Unit step along ``grad`` in ``norm``: sign for Linf, grad/||grad||_p for L2 and L1.

    A zero gradient gives a zero step (the sample is left where it is).
    """
    if norm is Norm.LINF:
        return grad.sign()
    p = 2 if norm is Norm.L2 else 1
    size = grad.flatten(1).norm(p=p, dim=1).clamp_min(1e-12)
    return grad / broadcast_view(size, grad)


@declared
class FGSM(FixedBudgetAttack):
    """Fast gradient sign method and its L2/L1 variants (FGM).

    Untargeted (Goodfellow 2015, eq. in section 4):
        x' = clip(x + eps * sign(grad_x J(theta, x, y)))
    Targeted:
        x' = clip(x - eps * sign(grad_x J(theta, x, t)))
    With ``norm="l2"`` or ``"l1"`` the gradient is divided by its L2 or L1 norm instead of
    taking its sign. One gradient evaluation per sample.
    """

    goals = ALL_GOALS
    norms = frozenset({Norm.LINF, Norm.L2, Norm.L1})
    eps: float = budget()
    norm: NormArg = norm_choice("linf", ("linf", "l2", "l1"))
    targeted: bool = TARGETED

    def _run(self, run: AttackRun) -> Tensor:
        grad, logits = run.loss_gradient(run.x)
        run.clean_scores = logits
        return run.x + run.eps_view() * steepest_ascent(grad, self.norm)
