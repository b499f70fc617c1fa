"""Momentum iterative FGSM of Dong et al. (CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from brittle.perturbation import broadcast_view
from brittle.threat import Norm

from .base import AttackRun, FixedBudgetAttack
from .fgsm import ALL_GOALS
from .iterative import Active, ascend
from .params import STEP_SIZE, STEPS, TARGETED, budget, declared, param


@declared
class MIFGSM(FixedBudgetAttack):
    """MI-FGSM, Linf (Dong et al. 2018):

        g_0 = 0,
        g_{k+1} = mu * g_k + grad_x J(theta, x_k, y) / ||grad_x J(theta, x_k, y)||_1,
        x_{k+1} = clip_{B_eps(x) ∩ box}(x_k + alpha * sign(g_{k+1})).

    The L1-normalised gradient is accumulated, not its sign; ``decay`` is mu (mu = 0 gives
    BIM). ``step_size`` is alpha in absolute units; when ``None``, alpha = eps / steps of each
    sample's own eps, the paper's choice. Targeted, J is replaced by -J(theta, x, t).

    Early stopping: any point of the ball that meets the goal is a valid result, so a sample
    whose iterate meets it is kept as is and costs no further gradient.
    """

    goals = ALL_GOALS
    norms = frozenset({Norm.LINF})
    eps: float = budget()
    steps: int = STEPS
    step_size: float | None = STEP_SIZE
    decay: float = param(default=1.0, help="Momentum decay mu (0: BIM).", low=0.0)
    targeted: bool = TARGETED

    def _step(self, active: Active, grad: Tensor) -> Tensor:
        assert active.memory is not None
        size = grad.flatten(1).abs().sum(1).clamp_min(1e-12)
        active.memory.mul_(self.decay).add_(grad / broadcast_view(size, grad))
        return active.x + active.alpha * active.memory.sign()

    def _run(self, run: AttackRun) -> Tensor:
        idx = torch.arange(len(run.x), device=run.x.device)
        active = Active.start(run, idx, run.x, self.step_size, 1.0 / self.steps)
        active.memory = torch.zeros_like(run.x)
        return ascend(run, active, self.steps, self._step, self.norm, clean_start=True)[0]
