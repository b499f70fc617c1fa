"""Momentum iterative FGSM of Dong et al. (CVPR 2018)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from brittle.errors import InputError
from brittle.threat import Norm

from .base import Attack, AttackRun
from .iterative import Active, ascend, check_step_size, check_steps


class MIFGSM(Attack):
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

    norms: ClassVar[frozenset[Norm]] = frozenset({Norm.LINF})

    def __init__(
        self,
        eps: float,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        targeted: bool = False,
    ) -> None:
        super().__init__(eps=eps, norm=Norm.LINF, targeted=targeted)
        self.steps = check_steps(steps)
        self.step_size = check_step_size(step_size)
        if (
            isinstance(decay, bool)
            or not isinstance(decay, int | float)
            or not (math.isfinite(decay) and decay >= 0)
        ):
            raise InputError(f"decay must be a finite number >= 0, got {decay!r}")
        self.decay = float(decay)

    def _step(self, active: Active, grad: Tensor) -> Tensor:
        assert active.memory is not None
        size = grad.flatten(1).abs().sum(1).clamp_min(1e-12)
        active.memory.mul_(self.decay).add_(grad / size.view(-1, *([1] * (grad.ndim - 1))))
        return active.x + active.alpha * active.memory.sign()

    def _run(self, run: AttackRun) -> Tensor:
        idx = torch.arange(len(run.x), device=run.x.device)
        active = Active.start(run, idx, run.x, self.step_size, 1.0 / self.steps)
        active.memory = torch.zeros_like(run.x)
        return ascend(run, active, self.steps, self._step, self.norm, clean_start=True)[0]
