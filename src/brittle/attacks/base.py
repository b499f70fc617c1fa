"""The one entry point every attack goes through, and the state an attack runs with.

:meth:`Attack.attack` is final (the design of Foolbox 3's ``attacks/base.py``): it validates
the inputs before any work, runs the attack's :meth:`Attack._run`, projects the result onto
the budget and the box, runs the model on what it returns and sets ``success`` from the
criterion's verdict on those outputs alone, then measures the perturbation. An attack cannot
report a success the model does not confirm, nor return an input outside the box or the
budget. A randomised model (``model.eot`` set) is judged over several forward passes, a
strict majority deciding, and draws from generators seeded by the attack's seed
(:mod:`brittle.eot`).

Two bases say what an attack promises (Foolbox 3's FixedEpsilonAttack and
MinimizationAttack): a :class:`FixedBudgetAttack` looks for any input within its budget ``eps``
that meets the goal and returns what it crafted, success or not; a
:class:`MinimizationAttack` looks for the smallest perturbation that meets the goal, takes
``eps`` only as an optional cap, and returns a sample it cannot fool unchanged.

An attack reaches the model only through ``run.access`` (:class:`~brittle.access.ModelAccess`):
counted per sample, and limited to what the attack's declared ``capability`` allows. Its
random draws come from ``run.uniform`` and ``run.normal`` (on the device) or ``run.random``
(any draw of a ``torch.Generator``), functions of the sample's id (:mod:`brittle.randomness`).
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, final

import torch
from torch import Tensor

from brittle.access import ModelAccess
from brittle.classifier import Classifier
from brittle.criteria import (
    Criterion,
    Misclassification,
    TargetChoice,
    TargetedMisclassification,
)
from brittle.eot import misclassified, model_randomness, verdict_scores
from brittle.errors import InputError, ThreatModelError
from brittle.losses import Loss, LossName
from brittle.model import Model
from brittle.perturbation import broadcast_view, norms, project, within_budget
from brittle.randomness import Draw, Stream, normal, per_sample, uniform
from brittle.threat import Capability, Goal, Norm, ThreatModel
from brittle.validation import check_positive_integer

from .params import NORMS, TARGETED, NormArg, Param, budget, check_params, norm_choice
from .result import AttackResult

TargetSpec = TargetChoice | None
DEFAULT_BATCH_SIZE = 256
"""How many samples an attack takes at once when its caller is not told (evaluations,
checks and metrics that run attacks over a data set)."""


@dataclass
class AttackRun:
    """One call of an attack: the validated batch, its goal, its budget, and the model access.

    ``eps`` holds each sample's budget (``None`` for an unbounded minimal attack). ``target``
    holds each sample's target class when the criterion is targeted. ``ids`` are the samples'
    ids (their indices in the data set), which seed their random draws. An attack that
    searches for each sample's smallest budget (``Minimize``) leaves it in ``min_eps``. An
    attack that queried the model on the clean inputs may store the scores in ``clean_scores``
    to spare the base class a pass (taken when they are the model's eval-mode scores: see
    :meth:`Attack._clean_scores_are_verdict`).
    """

    access: ModelAccess
    x: Tensor
    y: Tensor
    criterion: Criterion
    target: Tensor | None
    ids: Tensor
    seed: int
    eps: Tensor | None = None
    min_eps: Tensor | None = None
    clean_scores: Tensor | None = None
    _model: Model | None = None

    @property
    def targeted(self) -> bool:
        return self.criterion.targeted

    @property
    def labels(self) -> Tensor:
        """The class the loss is about: the target when targeted, else the true label."""
        return self.target if self.target is not None else self.y

    def eps_view(self, idx: Tensor | None = None) -> Tensor:
        """Per-sample budget shaped to broadcast over inputs, ``(N, 1, 1, 1)`` for images."""
        if self.eps is None:
            raise InputError("this attack needs a budget eps")
        e = self.eps if idx is None else self.eps[idx]
        return broadcast_view(e.to(self.x.dtype), self.x)

    def goal_met(self, scores: Tensor, idx: Tensor | None = None) -> Tensor:
        """Per-sample: do these scores (of the rows ``idx``) already meet the goal?"""
        y = self.y if idx is None else self.y[idx]
        t = None if self.target is None else (self.target if idx is None else self.target[idx])
        probs = self.access.probabilities(scores) if self.criterion.needs_probabilities else None
        return self.criterion.met(scores, y, t, probs)

    def outputs(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """The model's scores at ``x``, or, for an attack that may see labels only, the labels
        as one-hot rows (enough for :meth:`goal_met` with kappa = 0). One query each."""
        if self.access.capability >= Capability.ORACLE_SCORES:
            return self.access.scores(x, idx)
        labels = self.access.labels(x, idx)
        return torch.nn.functional.one_hot(labels, self.access.num_classes).to(x.dtype)

    def loss_gradient(
        self, x: Tensor, idx: Tensor | None = None, loss: LossName | Loss = "ce"
    ) -> tuple[Tensor, Tensor]:
        """Gradient of the objective to *ascend* at ``x`` (rows ``idx``), and the logits.

        Untargeted: loss(f(x), y); targeted: -loss(f(x), t), so that every attack steps along
        ``+grad``. Default loss: the cross-entropy J(theta, x, y) of Goodfellow 2015.
        """
        labels = self.labels if idx is None else self.labels[idx]
        sign = -1.0 if self.targeted else 1.0
        return self.access.loss_gradient(x, labels, loss, idx, sign)

    def random(self, stream: Stream, draw: Draw, idx: Tensor | None = None) -> Tensor:
        """One draw per sample (rows ``idx``) from its own CPU generator, seeded by (seed, id,
        stream): independent of the batch it is in. Moved to the inputs' device. For draws
        in a loop, :meth:`uniform` and :meth:`normal` draw on the device."""
        ids = self.ids if idx is None else self.ids[idx]
        return per_sample(self.seed, ids, stream, draw, self.x.device)

    def uniform(
        self, stream: Stream, count: int, idx: Tensor | None = None, start: int = 0
    ) -> Tensor:
        """Uniforms in [0, 1), float64, ``(len(idx), count)``: elements ``start`` onwards of
        each sample's sequence of (seed, id, stream), drawn on the inputs' device without a
        host sync (:func:`brittle.randomness.uniform`)."""
        ids = self.ids if idx is None else self.ids[idx]
        return uniform(self.seed, ids, stream, count, start)

    def normal(self, stream: Stream, count: int, idx: Tensor | None = None) -> Tensor:
        """Standard normals, float64, ``(len(idx), count)``, per sample of (seed, id, stream),
        on the inputs' device (:func:`brittle.randomness.normal`)."""
        ids = self.ids if idx is None else self.ids[idx]
        return normal(self.seed, ids, stream, count)

    def delegate(self, attack: Attack, idx: Tensor, eps: Tensor | None = None) -> AttackResult:
        """Run another attack on the rows ``idx`` under this run's goal, adding its costs.

        Composite attacks (``Minimize``, :class:`~brittle.attacks.worst_case.WorstCase`) reach the model only this way. The
        inner attack's re-checks are queries this attack relied on, so they count too.
        """
        assert self._model is not None
        target = None if self.target is None else self.target[idx]
        result = attack.attack(
            self._model,
            self.x[idx],
            self.y[idx],
            ids=self.ids[idx],
            eps=eps,
            criterion=self.criterion.restricted(target),
        )
        self.access.queries.index_add_(0, idx, result.queries + result.verification_queries)
        self.access.gradients.index_add_(0, idx, result.gradients)
        return result


class Attack(ABC):
    """Base class of every attack; subclass :class:`FixedBudgetAttack` or
    :class:`MinimizationAttack`.

    Subclasses declare what they support (``goals``, ``norms``, ``capability``), their
    parameters (typed fields of a :func:`~brittle.attacks.params.declared` class, which
    make ``params`` and the constructor; every value is validated by :meth:`_configure`),
    and implement :meth:`_run`.
    ``supports_unbounded``: the attack works on an unbounded box (a latent space);
    ``supports_query_budget``: it stops each sample at ``max_queries``.
    """

    goals: frozenset[Goal] = frozenset({Goal.UNTARGETED, Goal.TARGETED, Goal.SOURCE_TARGET})
    norms: frozenset[Norm] = frozenset({Norm.LINF})
    capability: Capability = Capability.WHITE_BOX
    params: ClassVar[tuple[Param, ...]] = ()
    supports_unbounded: bool = True
    supports_query_budget: ClassVar[bool] = False
    requires_budget: ClassVar[bool] = True

    eps: float | None
    norm: Norm
    targeted: bool = False
    seed: int = 0
    """The seed of random targets for attacks that draw nothing else."""

    def _configure(self, **values: Any) -> None:
        """Check every declared parameter (an :class:`InputError` names a bad one) and set it.

        ``norm`` is parsed (``"inf"``, ``"2"``, ...) and must be one of the attack's norms;
        ``targeted`` must be a goal the attack supports. The constructor of a declared attack
        calls it with every argument; an attack with checks across parameters, or with
        arguments that are no parameters, overrides it and calls this with the parameters.
        """
        if "norm" in values:
            values["norm"] = self._check_norm(values["norm"])
        checked = check_params(type(self).params, values, self.name)
        for key, value in checked.items():
            setattr(self, key, Norm(value) if key == "norm" else value)
        if "norm" not in checked:
            self.norm = next(iter(self.norms)) if len(self.norms) == 1 else Norm.LINF
        if "eps" not in checked:
            self.eps = None
        if self.requires_budget and self.eps is None:
            raise InputError(f"{self.name} is a fixed-budget attack: give eps")
        if self.targeted and Goal.TARGETED not in self.goals:
            raise ThreatModelError(f"{self.name} does not support the goal 'targeted'")

    def _check_norm(self, value: Any) -> str:
        """``value`` parsed as a norm (``"inf"``, ``"2"``, a :class:`Norm`): its name.

        Anything but a string or a ``Norm``, or a name that is no norm, is an
        :class:`InputError` naming the parameter; a norm the attack does not work in is a
        :class:`ThreatModelError`.
        """
        declared = {p.name: p for p in type(self).params}.get("norm")
        accepted = declared.describe_range() if declared else "a norm"
        bad = InputError(f"{self.name}: norm must be {accepted}, got {value!r}")
        if not isinstance(value, str):  # a Norm is a str
            raise bad
        try:
            norm = Norm.parse(value)
        except ThreatModelError:
            raise bad from None
        if norm not in self.norms:
            supported = ", ".join(sorted(n.value for n in self.norms))
            raise ThreatModelError(
                f"{self.name} works in norms {{{supported}}}, not {norm.value!r}"
            )
        return norm.value

    def config(self) -> dict[str, Any]:
        """The declared parameters and their values (JSON-ready): what identifies the attack."""
        out: dict[str, Any] = {}
        for p in type(self).params:
            value = getattr(self, p.name)
            out[p.name] = value.value if isinstance(value, Norm) else value
        return out

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

    def _keep_failures(self) -> bool:
        """Whether a sample the attack did not fool comes back as crafted (else unchanged)."""
        return True

    @final
    def attack(
        self,
        model: Model,
        x: Tensor,
        y: Tensor,
        target: TargetSpec = None,
        *,
        eps: float | Tensor | None = None,
        ids: Tensor | Sequence[int] | None = None,
        criterion: Criterion | None = None,
        max_queries: int | None = None,
    ) -> AttackResult:
        """Attack ``x`` with labels ``y`` and return the model's own verdict on the result.

        ``target``: classes, ``"random"`` or ``"least_likely"`` (the short form of
        ``criterion=TargetedMisclassification(target)``); ``criterion``: any goal the attack
        supports (:mod:`brittle.criteria`). ``eps`` overrides the budget for this call, one
        number or one per sample. ``ids``: each sample's id, which seeds its random draws
        (default ``arange(n)``; pass the samples' indices in their data set). ``max_queries``:
        a per-sample query budget, for attacks that support one. Everything is validated
        before any work.
        """
        model = self._check_model(model)
        limit = self._query_budget(max_queries)
        x = model.check_inputs(x)
        budget = self._budget(eps, len(x), x)
        ids_t = check_ids(ids, len(x), x.device)
        # a randomised model draws from generators seeded by the seed and the batch's first id
        first = int(ids_t[0]) if model.eot is not None and len(x) else 0
        # the checks that run the model come after those that need only the arguments
        with model_randomness(model, self.seed, ("eot-checks", first)):
            if len(x):
                model.check_outputs(x)
            y = model.check_labels(y, len(x))
            chosen = self._criterion(target, criterion, model)
            if self.needs_gradients and len(x) and isinstance(model, Classifier):
                model.check_gradients(x)
        num_classes = model.num_classes or 2
        start = time.perf_counter()
        verification = torch.zeros(len(x), dtype=torch.long, device=x.device)
        clean = None
        if isinstance(chosen, TargetedMisclassification) and chosen.least_likely:
            with model_randomness(model, self.seed, ("eot-clean", first)):
                clean, passes = verdict_scores(model, x, misclassified(y))
            verification += passes
        t = chosen.targets(y, num_classes, clean, ids_t, self.seed)
        access = ModelAccess(model, self.capability, len(x), self.name, limit)
        run = AttackRun(access, x, y, chosen, t, ids_t, self.seed, budget, None, clean, model)
        with self._mode(model), model_randomness(model, self.seed, ("eot", self.name, first)):
            x_adv = self._run(run).detach() if len(x) else x.clone()
        access.check_budget()
        x_adv = project(x, x_adv, self.norm, budget, model.bounds)
        with model_randomness(model, self.seed, ("eot-verdict", first)):
            scores_adv, passes = verdict_scores(model, x_adv, self._verdict_goal(run))
            verification += passes
            if clean is not None:
                run.clean_scores = clean
            elif run.clean_scores is None or not self._clean_scores_are_verdict(model):
                run.clean_scores, passes = verdict_scores(model, x, misclassified(y))
                verification += passes
        reported = self.eps if eps is None or budget is None or not len(x) else float(budget.max())
        return self._result(run, x_adv, scores_adv, verification, limit, reported, start)

    __call__ = attack

    # ------------------------------------------------------------------ the door
    def _check_model(self, model: Any) -> Model:
        if not isinstance(model, Model):
            raise InputError(
                f"the model must be a brittle.Classifier or brittle.Oracle, got "
                f"{type(model).__name__}; wrap your module: brittle.Classifier(module, "
                "bounds=(0, 1))"
            )
        if self.capability > model.capability:
            raise ThreatModelError(
                f"{self.name} needs capability {self.capability.name} but the model grants "
                f"only {model.capability.name} (an Oracle can only be queried); use an attack "
                f"that needs no more than {model.capability.name}"
            )
        if not self.supports_unbounded and not model.bounded:
            raise InputError(
                f"{self.name} needs a bounded input box, but the model's bounds are "
                f"{model.envelope()}; use an attack that works in unbounded spaces (PGD, "
                "DeepFool, L-BFGS)"
            )
        return model

    def _criterion(
        self, target: TargetSpec, criterion: Criterion | None, model: Model
    ) -> Criterion:
        """The goal of this call: the criterion given, or the one ``target`` stands for."""
        if criterion is not None:
            if not isinstance(criterion, Criterion):
                raise InputError(
                    f"criterion must be a brittle.criteria.Criterion, got "
                    f"{type(criterion).__name__}"
                )
            if target is not None:
                raise InputError("give either target or criterion, not both")
            if self.targeted and not criterion.targeted:
                raise InputError(
                    f"{self.name} was built with targeted=True: give a targeted criterion"
                )
            chosen = criterion
        elif target is not None:
            if Goal.TARGETED not in self.goals:
                goals = ", ".join(sorted(g.value for g in self.goals))
                raise ThreatModelError(
                    f"{self.name} supports goals {{{goals}}}, not 'targeted': it takes no target"
                )
            chosen = TargetedMisclassification(target)  # a target states the goal
        elif self.targeted:
            raise InputError(
                f"{self.name} was built with targeted=True but no target was given: pass "
                "target=<classes>, 'random' or 'least_likely'"
            )
        else:
            chosen = Misclassification()
        if chosen.goal not in self.goals:
            goals = ", ".join(sorted(g.value for g in self.goals))
            raise ThreatModelError(
                f"{self.name} supports goals {{{goals}}}, not {chosen.goal.value!r}"
            )
        if chosen.needs_scores and not model.has_scores:
            raise InputError(f"{chosen.describe()} needs scores, but the model returns labels only")
        if chosen.needs_scores and self.capability < Capability.ORACLE_SCORES:
            raise ThreatModelError(
                f"{chosen.describe()} needs scores, but {self.name} sees labels only "
                f"(capability {self.capability.name})"
            )
        return chosen

    def _query_budget(self, max_queries: int | None) -> int | None:
        limit = max_queries if max_queries is not None else getattr(self, "max_queries", None)
        if limit is None:
            return None
        if not self.supports_query_budget:
            raise InputError(f"{self.name} does not take a query budget (max_queries)")
        return check_positive_integer(limit, "max_queries")

    def _mode(self, model: Model) -> Any:
        """The state the model is attacked in: a classifier's ``mode``."""
        if isinstance(model, Classifier):
            return model.evaluation(model.mode)
        return model.evaluation()

    def _clean_scores_are_verdict(self, model: Model) -> bool:
        """Whether clean scores the attack stored in ``run.clean_scores`` can stand for the
        base's clean prediction: not when it saw labels only (one-hot rows), nor when a
        classifier was attacked outside eval mode (dropout on, batch statistics), nor for a
        randomised model judged over several draws (EOT)."""
        if self.capability < Capability.ORACLE_SCORES:
            return False
        if model.eot is not None and model.eot.draws > 1:
            return False
        return not isinstance(model, Classifier) or model.mode == "eval"

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

    # ------------------------------------------------------------------ the verdict
    @staticmethod
    def _verdict_goal(run: AttackRun) -> Callable[[Tensor], Tensor]:
        """Per draw of scores: is the goal met? (A non-finite row meets untargeted goals
        only, as in :meth:`_result`.) What a randomised model's verdict counts over its
        draws (:func:`~brittle.eot.verdict_scores`)."""

        def met(scores: Tensor) -> Tensor:
            goal = run.goal_met(torch.nan_to_num(scores))
            finite = torch.isfinite(scores).all(1)
            return torch.where(finite, goal, torch.full_like(goal, not run.criterion.targeted))

        return met

    def _result(
        self,
        run: AttackRun,
        x_adv: Tensor,
        scores_adv: Tensor,
        verification: Tensor,
        limit: int | None,
        eps: float | None,
        start: float,
    ) -> AttackResult:
        """Judge the returned inputs with the criterion and measure them."""
        x, y, criterion = run.x, run.y, run.criterion
        assert run.clean_scores is not None
        scores_clean = run.clean_scores
        finite_adv = self._finite_rows(scores_adv)
        finite_clean = torch.isfinite(scores_clean).all(1)
        met = run.goal_met(torch.nan_to_num(scores_adv))
        # a non-finite output is never a correct answer: it meets untargeted goals only
        success = torch.where(finite_adv, met, torch.full_like(met, not criterion.targeted))
        if not self._keep_failures():
            x_adv = torch.where(broadcast_view(success, x), x_adv, x)
            scores_adv = torch.where(success[:, None], scores_adv, scores_clean)
            finite_adv = torch.where(success, finite_adv, finite_clean)
        delta = x_adv - x
        if run.eps is not None and len(x):
            inside = within_budget(delta, self.norm, run.eps)
            if not bool(inside.all()):  # an internal error, never a user error
                raise AssertionError(
                    f"{self.name} returned {int((~inside).sum())} inputs over budget"
                )
        sizes = norms(delta)
        pred_adv = torch.where(finite_adv, scores_adv.argmax(1), -1)
        pred_clean = torch.where(finite_clean, scores_clean.argmax(1), -1)
        probs = run.access.probabilities(torch.nan_to_num(scores_adv))
        confidence = probs.gather(1, pred_adv.clamp_min(0)[:, None]).squeeze(1)
        queries = run.access.queries
        exhausted = torch.zeros_like(success) if limit is None else (queries >= limit) & ~success
        return AttackResult(
            x_adv=x_adv,
            success=success,
            y=y,
            pred_clean=pred_clean,
            pred_adv=pred_adv,
            confidence_adv=torch.where(finite_adv, confidence, math.nan),
            l0=sizes["l0"],
            l1=sizes["l1"],
            l2=sizes["l2"],
            linf=sizes["linf"],
            gradients=run.access.gradients,
            queries=queries,
            verification_queries=verification,
            nonfinite=~finite_adv,
            exhausted=exhausted,
            target=run.target,
            ids=run.ids,
            attack=self.name,
            norm=self.norm.value,
            criterion=criterion.describe(),
            eps=eps,
            seconds=time.perf_counter() - start,
            min_eps=None
            if run.min_eps is None
            else torch.where(success, run.min_eps, torch.full_like(run.min_eps, math.inf)),
        )

    def _finite_rows(self, scores: Tensor) -> Tensor:
        """Rows of ``scores`` without NaN or inf; warns when there are others.

        A non-finite output is never a correct answer: such a sample is not robust, is
        counted in ``nonfinite``, and meets an untargeted goal (never a targeted one).
        """
        finite = torch.isfinite(scores).all(1)
        bad = int((~finite).sum())
        if bad:
            warnings.warn(
                f"{self.name}: the model returned NaN or inf outputs on {bad} of the "
                f"{len(scores)} returned inputs; they count as not robust (nonfinite_outputs). "
                "Check the model on those inputs.",
                RuntimeWarning,
                stacklevel=4,
            )
        return finite

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.name}({params})"


class FixedBudgetAttack(Attack):
    """An attack that looks for any input within its budget ``eps`` that meets the goal.

    A sample it does not fool comes back as crafted (inside the budget), with
    ``success=False``. Subclasses whose only parameters are the budget, the norm and the goal
    can keep this constructor; the others are :func:`~brittle.attacks.params.declared`
    classes, whose fields are all their parameters (these three are not inherited).
    """

    requires_budget: ClassVar[bool] = True
    params: ClassVar[tuple[Param, ...]] = (
        budget().declare("eps", float),
        norm_choice("linf", NORMS).declare("norm", NormArg),
        TARGETED.declare("targeted", bool),
    )

    def __init__(self, eps: float, norm: str | Norm = "linf", targeted: bool = False) -> None:
        self._configure(eps=eps, norm=norm, targeted=targeted)


class MinimizationAttack(Attack):
    """An attack that looks for the smallest perturbation that meets the goal.

    ``eps`` is optional: it caps the result (the base projects onto the eps-ball, and a
    sample whose smallest perturbation found is larger then fails). A sample it does not fool
    comes back unchanged, with ``success=False``: never a starting point the model happens
    to misclassify.
    """

    requires_budget: ClassVar[bool] = False

    def _keep_failures(self) -> bool:
        return False


def check_ids(ids: Tensor | Sequence[int] | None, n: int, device: torch.device) -> Tensor:
    """Sample ids as a long tensor of shape ``(n,)`` (default ``arange(n)``)."""
    if ids is None:
        return torch.arange(n, device=device)
    t = torch.as_tensor(ids)
    if t.is_floating_point() or t.dtype == torch.bool or t.shape != (n,):
        raise InputError(
            f"ids must hold one id per sample: {n} integers, shape ({n},); got dtype {t.dtype} shape "
            f"{tuple(t.shape)}"
        )
    return t.to(device, torch.long)
