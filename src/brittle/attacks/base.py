"""The one entry point every attack goes through, and the state an attack runs with.

:meth:`Attack.attack` is final (the design of Foolbox 3's ``attacks/base.py``): it validates
the inputs before any work, runs the attack's :meth:`Attack._run`, projects the result onto
the budget and the box, runs the model on what it returns and sets ``success`` from that
prediction alone, then measures the perturbation. An attack cannot report a success the
model does not confirm, nor return an input outside the box or the budget.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, final

import torch
import torch.nn.functional as F
from torch import Tensor

from brittle.classifier import Classifier
from brittle.errors import InputError, ThreatModelError
from brittle.perturbation import norms, project, within_budget
from brittle.threat import Capability, Goal, Norm, ThreatModel

from .result import AttackResult
from .targets import TargetSpec, resolve_targets


@dataclass
class AttackRun:
    """One call of an attack: the validated batch, its labels or targets, and the counters.

    ``eps`` holds each sample's budget (``None`` for an unbounded minimal attack); a fixed
    budget attack uses it for its steps through :meth:`eps_view`. ``gradients`` and ``queries`` count, per sample, the forward+backward passes and all model
    evaluations the attack makes; attacks record them through :meth:`count` or
    :meth:`loss_gradient`. An attack that searches for each sample's smallest budget
    (``Minimize``) leaves it in ``min_eps``; it reaches the result as ``inf`` where the model
    is not fooled. An attack that already ran the model on the clean inputs may store
    the logits in ``clean_logits`` to spare the base class a forward pass.
    """

    classifier: Classifier
    x: Tensor
    y: Tensor
    target: Tensor | None
    generator: torch.Generator
    eps: Tensor | None = None
    min_eps: Tensor | None = None
    gradients: Tensor = field(init=False)
    queries: Tensor = field(init=False)
    clean_logits: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        self.gradients = torch.zeros(n, dtype=torch.long, device=self.x.device)
        self.queries = torch.zeros(n, dtype=torch.long, device=self.x.device)

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def eps_view(self, idx: Tensor | None = None) -> Tensor:
        """Per-sample budget shaped to broadcast over inputs, ``(N, 1, 1, 1)`` for images."""
        if self.eps is None:
            raise InputError("this attack needs a budget eps")
        e = self.eps if idx is None else self.eps[idx]
        return e.to(self.x.dtype).view(-1, *([1] * (self.x.ndim - 1)))

    @property
    def labels(self) -> Tensor:
        """The class the loss is about: the target when targeted, else the true label."""
        return self.target if self.target is not None else self.y

    def count(self, idx: Tensor | None = None, gradients: int = 1) -> None:
        """Record one model evaluation with ``gradients`` input gradients for the rows ``idx``.

        ``gradients=0`` is a forward pass only; ``gradients=k`` a pass that yields ``k``
        gradients (e.g. one per candidate class in a batched Jacobian).
        """
        rows = slice(None) if idx is None else idx
        self.queries[rows] += 1
        if gradients:
            self.gradients[rows] += gradients

    def loss_gradient(self, x: Tensor, idx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Gradient of the cross-entropy objective to *ascend*, and the logits at ``x``.

        Untargeted: J(theta, x, y); targeted: -J(theta, x, t), so that every attack steps
        along ``+grad``. The loss is summed over the batch (not averaged), so each sample's
        gradient is independent of the batch size and tiny gradients do not underflow.
        ``idx`` selects the rows of the batch ``x`` stands for (for counting).
        """
        labels = self.labels if idx is None else self.labels[idx]
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.classifier.logits(x)
            loss = F.cross_entropy(logits, labels, reduction="sum")
            if self.targeted:
                loss = -loss
            (grad,) = torch.autograd.grad(loss, x)
        self.count(idx)
        return grad, logits.detach()

    def goal_met(self, logits: Tensor, idx: Tensor | None = None) -> Tensor:
        """Per-sample: do these logits already meet the goal (misclassified, or on target)?"""
        pred = logits.argmax(1)
        if self.target is not None:
            return pred == (self.target if idx is None else self.target[idx])
        return pred != (self.y if idx is None else self.y[idx])


class Attack(ABC):
    """Base class of every attack.

    Subclasses declare what they support (``goals``, ``norms``, ``capability``), set
    ``minimal = True`` when they search for the smallest perturbation (a failed sample is then
    returned unchanged), and implement :meth:`_run`.
    """

    goals: ClassVar[frozenset[Goal]] = frozenset({Goal.UNTARGETED, Goal.TARGETED})
    norms: ClassVar[frozenset[Norm]] = frozenset({Norm.LINF})
    capability: ClassVar[Capability] = Capability.WHITE_BOX
    minimal: ClassVar[bool] = False

    def __init__(
        self,
        eps: float | None,
        norm: str | Norm = Norm.LINF,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        self.norm = Norm.parse(norm)
        if self.norm not in self.norms:
            supported = ", ".join(sorted(n.value for n in self.norms))
            raise ThreatModelError(
                f"{type(self).__name__} works in norms {{{supported}}}, not {self.norm.value!r}"
            )
        if eps is not None and (
            isinstance(eps, bool)
            or not isinstance(eps, numbers.Real)
            or not math.isfinite(eps)
            or eps < 0
        ):
            raise InputError(f"eps must be a finite number >= 0, got {eps!r}")
        if eps is None and not self.minimal:
            raise InputError(f"{type(self).__name__} is a fixed-budget attack: give eps")
        goal = Goal.TARGETED if targeted else Goal.UNTARGETED
        if goal not in self.goals:
            raise ThreatModelError(
                f"{type(self).__name__} does not support the goal {goal.value!r}"
            )
        self.eps: float | None = None if eps is None else float(eps)
        self.targeted = targeted
        self.seed = seed

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def needs_gradients(self) -> bool:
        return self.capability >= Capability.WHITE_BOX

    def check_threat(self, threat: ThreatModel) -> None:
        """Raise :class:`ThreatModelError` if this attack is not permitted under ``threat``."""
        threat.check(self)
        if self.eps is not None and self.eps > threat.eps * (1 + 1e-9):
            raise ThreatModelError(
                f"{self.name} has eps={self.eps:g}, over the threat's budget {threat.eps:g}"
            )

    @abstractmethod
    def _run(self, run: AttackRun) -> Tensor:
        """Return candidate adversarial inputs for ``run.x`` (projected afterwards)."""

    @final
    def attack(
        self,
        classifier: Classifier,
        x: Tensor,
        y: Tensor,
        target: TargetSpec = None,
        *,
        eps: float | Tensor | None = None,
    ) -> AttackResult:
        """Attack ``x`` with labels ``y``; ``target``: classes, ``"random"`` or ``"least_likely"``.

        ``eps`` overrides the attack's budget for this call, as one number or one per sample
        (``Minimize`` bisects over it). Validates everything before any work, then returns an
        :class:`AttackResult` whose ``success`` is the model's own verdict on the returned
        inputs.
        """
        if not isinstance(classifier, Classifier):
            raise InputError(
                f"classifier must be a brittle.Classifier, got {type(classifier).__name__}; "
                "wrap your module: brittle.Classifier(module, bounds=(0, 1))"
            )
        x = classifier.check_inputs(x)
        if len(x):
            classifier.check_outputs(x)
        y = classifier.check_labels(y, len(x))
        if self.targeted and target is None:
            raise InputError(
                f"{self.name} was built with targeted=True but no target was given: pass "
                "target=<classes>, 'random' or 'least_likely'"
            )
        if not self.targeted and target is not None:
            raise InputError(
                f"{self.name} is untargeted; build it with targeted=True to give targets"
            )
        if self.needs_gradients and len(x):
            classifier.check_gradients(x)
        budget = self._budget(eps, len(x), x)
        assert classifier.num_classes is not None or not len(x)
        generator = torch.Generator().manual_seed(self.seed)
        start = time.perf_counter()
        with classifier.evaluation():
            clean_logits = None
            if isinstance(target, str) and target == "least_likely":
                with torch.no_grad():
                    clean_logits = classifier.logits(x)
            t = None
            if target is not None:
                t = resolve_targets(target, y, classifier.num_classes or 2, clean_logits, generator)
            run = AttackRun(classifier, x, y, t, generator, eps=budget, clean_logits=clean_logits)
            x_adv = self._run(run).detach() if len(x) else x.clone()
            x_adv = project(x, x_adv, self.norm, budget, classifier.bounds)
            with torch.no_grad():
                logits_adv = classifier.logits(x_adv)
                logits_clean = (
                    run.clean_logits if run.clean_logits is not None else classifier.logits(x)
                )
        success = run.goal_met(logits_adv) & self._finite_rows(logits_adv)
        if self.minimal:
            # a minimal-perturbation attack that fails returns the sample unchanged
            x_adv = torch.where(success.view(-1, *([1] * (x.ndim - 1))), x_adv, x)
            logits_adv = torch.where(success[:, None], logits_adv, logits_clean)
        delta = x_adv - x
        if budget is not None and len(x):
            inside = within_budget(delta, self.norm, budget)
            if not bool(inside.all()):  # an internal error, never a user error
                raise AssertionError(
                    f"{self.name} returned {int((~inside).sum())} inputs over budget"
                )
        sizes = norms(delta)
        probs = logits_adv.softmax(1)
        pred_adv = logits_adv.argmax(1)
        return AttackResult(
            x_adv=x_adv,
            success=success,
            y=y,
            pred_clean=logits_clean.argmax(1),
            pred_adv=pred_adv,
            confidence_adv=probs.gather(1, pred_adv[:, None]).squeeze(1),
            l0=sizes["l0"],
            l1=sizes["l1"],
            l2=sizes["l2"],
            linf=sizes["linf"],
            gradients=run.gradients,
            queries=run.queries,
            target=t,
            attack=self.name,
            norm=self.norm.value,
            eps=None if budget is None else (self.eps if eps is None else float(budget.max())),
            seconds=time.perf_counter() - start,
            min_eps=None
            if run.min_eps is None
            else torch.where(success, run.min_eps, torch.full_like(run.min_eps, math.inf)),
        )

    __call__ = attack

    def _finite_rows(self, logits: Tensor) -> Tensor:
        """Rows of ``logits`` without NaN or inf; warns when there are others.

        The argmax of a NaN row is meaningless, so such a row never counts as fooled: the
        input checks probe only a few samples, and a model may also break on what an attack
        feeds it.
        """
        finite = torch.isfinite(logits).all(1)
        bad = int((~finite).sum())
        if bad:
            warnings.warn(
                f"{self.name}: the model returned NaN or inf logits on {bad} of the "
                f"{len(logits)} returned inputs; they count as not fooled. Check the model "
                "on those inputs.",
                RuntimeWarning,
                stacklevel=3,
            )
        return finite

    def _budget(self, eps: float | Tensor | None, n: int, x: Tensor) -> Tensor | None:
        """The per-sample budget of this call: the override ``eps`` or the attack's own."""
        value = self.eps if eps is None else eps
        if value is None:
            return None
        # float64: an L0 fraction such as 0.29 must not round down in float32
        budget = torch.as_tensor(value, dtype=torch.float64, device=x.device)
        if budget.ndim == 0:
            budget = budget.expand(n).clone()
        if (
            budget.shape != (n,)
            or not bool(torch.isfinite(budget).all())
            or bool((budget < 0).any())
        ):
            raise InputError(f"eps must be finite and >= 0, one number or one per sample ({n},)")
        return budget

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self.name}({params})"
