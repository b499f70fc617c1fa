"""Running attacks over data sets in batches, and evaluations over several budgets that resume.

:func:`run_attack` attacks a data set batch by batch and joins the results.
:func:`evaluate` runs one attack, or a list of them (:class:`~brittle.eval.spec.AttackSpec`), at each budget
``eps``; writes every batch to a :class:`~brittle.eval.store.ResultStore` as soon as it is
done, skips the samples the store already holds, and summarises each budget from the stored
rows only, so a resumed run reports exactly what an uninterrupted one would. With several
attacks, each budget is also summarised by the **worst case** per sample: a sample is broken
when any attack broke it (the per-sample OR), and the report says which attack did first.
Robust accuracy comes with its Clopper-Pearson interval (:func:`clopper_pearson`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from brittle.attacks.base import DEFAULT_BATCH_SIZE, Attack, TargetSpec, check_ids
from brittle.attacks.result import AttackResult
from brittle.data.source import Source, TensorSource
from brittle.errors import InputError
from brittle.eval.chunks import Ticket, attack_ticket, fallen_ids, make_tickets, write
from brittle.eval.spec import AttackSpec
from brittle.eval.store import ResultStore
from brittle.model import Model
from brittle.progress import show_progress
from brittle.validation import as_tensor, check_positive_integer

if TYPE_CHECKING:
    from brittle.eval.sharing import Share

DEFAULT_EXAMPLES = 8
"""How many samples (the first ones) have their images kept for the report, per budget."""
CONFIDENCE = 0.95
"""The confidence level of the robust-accuracy intervals."""
WORST_CASE = "worst case"
"""The label of the per-sample worst case over an evaluation's attacks."""


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a proportion with ``k`` successes in ``n``
    trials at ``confidence``; ``(nan, nan)`` when ``n`` is 0."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class Examples:
    """The kept images of one budget: sample ids, labels, predictions with their softmax
    confidences, and inputs. ``confidence_clean`` is NaN where the clean scores are not
    known (:func:`summarise` reads the store only; :func:`evaluate` runs the model)."""

    indices: list[int]
    y: Tensor
    pred_clean: Tensor
    confidence_clean: Tensor
    pred_adv: Tensor
    confidence_adv: Tensor
    success: Tensor
    clean: Tensor
    adversarial: Tensor

    @staticmethod
    def empty() -> Examples:
        """No kept image."""
        none = torch.zeros(0)
        return Examples([], none, none, none, none, none, none, none, none)

    def with_clean_scores(self, model: Model) -> Examples:
        """These examples with the model's clean predictions and their confidences (NaN
        for a label-only oracle)."""
        if not self.indices:
            return self
        probs = model.probabilities(model.predict_scores(self.clean)).cpu()
        confidence, pred = probs.max(dim=1)
        return replace(self, pred_clean=pred, confidence_clean=confidence)


@dataclass(frozen=True)
class WorstCaseRecord:
    """The worst case over the attacks at one budget, per sample (in evaluation order).

    ``broken[a, i]``: attack ``a`` broke sample ``i`` (classified correctly before, not after);
    ``robust[i]``: correctly classified and broken by none; ``broken_by[i]``: the label of the
    first attack (in the evaluation's order) that broke it, ``None`` if none did.
    """

    ids: Tensor
    correct_clean: Tensor
    broken: Tensor
    robust: Tensor
    broken_by: list[str | None]


@dataclass(frozen=True)
class Evaluation:
    """Per-budget summaries of one run, with the images kept for its report.

    ``summaries[i]`` summarises budget ``eps[i]`` from the stored rows: with one attack its
    :meth:`AttackResult.summary`, with several the worst case over them; each has
    ``robust_count`` and the Clopper-Pearson interval of robust accuracy (``robust_ci_low``,
    ``robust_ci_high``, at :data:`CONFIDENCE`). ``per_attack[label][i]`` is each attack's own
    summary, ``worst[i]`` the per-sample worst case. ``reused`` counts the (attack, budget,
    sample) results found in the store and ``attacked`` those attacked by this call, which
    took ``seconds``. ``y`` are the samples' labels (in ``ids``' order) and ``pred_adv[i]``
    the predictions on the adversarial inputs at ``eps[i]`` (of the worst case).
    """

    run_key: str
    attack: str
    norm: str
    eps: list[float]
    summaries: list[dict[str, Any]]
    examples: list[Examples]
    reused: int
    attacked: int
    seconds: float
    attacks: list[str] = field(default_factory=list)
    per_attack: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    worst: list[WorstCaseRecord] = field(default_factory=list)
    ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    keys: dict[str, str] = field(default_factory=dict)
    y: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    pred_adv: list[Tensor] = field(default_factory=list)


def _check_batch(x: Any, y: Any, batch_size: int) -> tuple[Tensor, Tensor]:
    check_positive_integer(batch_size, "batch_size")
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if len(x) == 0:
        raise InputError("there is nothing to attack: x holds no samples")
    if len(y) != len(x):
        raise InputError(f"x has {len(x)} samples but y has {len(y)} labels; they must match")
    return x, y


def _batch_target(target: TargetSpec, index: Tensor | slice) -> TargetSpec:
    return target[index] if isinstance(target, Tensor) else target


def run_attack(
    classifier: Model,
    attack: Attack,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    target: TargetSpec = None,
    eps: float | None = None,
    ids: Tensor | None = None,
    progress: bool = True,
) -> AttackResult:
    """Attack ``x`` (labels ``y``) in batches of ``batch_size`` and join the results.

    ``target`` is as for :meth:`Attack.attack` (a tensor is split with the batches); ``eps``
    overrides the attack's budget (a minimal attack is then held to it). ``ids`` are the
    samples' ids (default: their indices in ``x``; a :class:`~brittle.data.Dataset`'s
    ``ids``), which seed their random draws: the result does not depend on the batches.
    """
    x, y = _check_batch(x, y, batch_size)
    ids = check_ids(ids, len(x), x.device)
    results = []
    with show_progress(len(x), attack.name, progress, unit="sample") as bar:
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            target_part = _batch_target(target, part)
            results.append(
                attack(classifier, x[part], y[part], target_part, eps=eps, ids=ids[part])
            )
            bar.update(len(results[-1]))
    return AttackResult.concat(results)


def single_plan(
    attack_factory: Callable[[float], Attack], eps: float, target: TargetSpec = None
) -> AttackSpec:
    """The spec of one attack built by ``attack_factory(eps)``, labelled by the attack's
    name (an attack the registry need not know)."""
    name = attack_factory(eps).name
    return AttackSpec(name=name, label=name, target=target, factory=attack_factory)


def as_source(data: Source | tuple[Any, Any]) -> Source:
    """``data`` as a :class:`~brittle.data.source.Source`: a source, or inputs and labels."""
    if isinstance(data, Source):
        return data
    try:
        x, y = data
    except (TypeError, ValueError):
        raise InputError(
            f"data must be a Source or a pair (x, y) of inputs and labels, got "
            f"{type(data).__name__}"
        ) from None
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if len(y) != len(x):
        raise InputError(f"x has {len(x)} samples but y has {len(y)} labels; they must match")
    return TensorSource(x, y)


def evaluate(
    classifier: Model,
    attacks: Callable[[float], Attack] | Sequence[AttackSpec],
    data: Source | tuple[Any, Any],
    eps_list: Sequence[float],
    *,
    batch_size: int,
    store: ResultStore,
    run_key: str,
    target: TargetSpec = None,
    ids: Tensor | Sequence[int] | None = None,
    progress: bool = True,
    examples: int = DEFAULT_EXAMPLES,
    share: Share | None = None,
) -> Evaluation:
    """Attack the samples ``ids`` of ``data`` with each attack at each budget in
    ``eps_list`` (sorted), resuming.

    ``data`` is a :class:`~brittle.data.source.Source` (``ids`` are its sample indices,
    default all; each chunk of ``batch_size`` samples is fetched when it is attacked, so the
    whole set is never held in memory) or a pair ``(x, y)`` of tensors (``ids`` then name
    their rows, default ``arange(len(x))``). ``attacks`` is one attack factory
    (``factory(eps)`` builds the attack of budget ``eps``; ``target`` its targets) or a list
    of :class:`~brittle.eval.spec.AttackSpec`. Each call is also held to ``eps``, so a
    minimal-perturbation attack counts as a success only within the budget. Samples already
    stored under ``(run_key, attack, eps)`` are not attacked again. Every chunk is stored as
    soon as it is done (one transaction); the summaries are computed from the stored rows.
    The ids key the store and seed the samples' random draws as in :func:`run_attack`, so a
    resumed run, whatever its batch size, draws what an uninterrupted one would. The images
    of the first ``examples`` samples are kept.
    """
    check_positive_integer(batch_size, "batch_size")
    source = as_source(data)
    if ids is None:
        id_list = list(range(len(source)))
    else:
        id_list = [int(i) for i in torch.as_tensor(ids).reshape(-1).tolist()]
    if not id_list:
        raise InputError("there is nothing to attack: no sample was given")
    if len(set(id_list)) != len(id_list):
        raise InputError("the sample ids must be distinct: they key the per-sample results")
    rows = id_list if isinstance(data, Source) else list(range(len(source)))
    if len(rows) != len(id_list):
        raise InputError(f"x has {len(source)} samples but there are {len(id_list)} ids")
    source.check_ids(rows)
    budgets = sorted({float(e) for e in eps_list})
    if not budgets or any(not math.isfinite(e) or e < 0 for e in budgets):
        raise InputError(f"eps_list must hold finite budgets >= 0, got {list(eps_list)}")
    plans = [single_plan(attacks, budgets[0], target)] if callable(attacks) else list(attacks)
    if not plans:
        raise InputError("give at least one attack to evaluate")
    labels = [p.label for p in plans]
    if len(set(labels)) != len(labels) or len({p.key for p in plans}) != len(plans):
        raise InputError(f"each attack of an evaluation must be distinct, got {labels}")
    if plans[0].survivors_only:
        raise InputError(
            f"the first attack of an evaluation ({plans[0].label}) attacks every sample; only "
            "later ones can attack the samples still standing"
        )
    keep = set(id_list[:examples])
    tickets = make_tickets(store, run_key, plans, budgets, id_list, rows, batch_size)
    start = time.perf_counter()
    if share is not None and share.world.distributed:
        attacked = share.run(tickets, store, keep, progress)
    else:
        attacked = _attack_all(
            classifier, plans, budgets, source, tickets, store, run_key, keep, progress
        )
    seconds = time.perf_counter() - start
    held = sum(
        len(store.done(run_key, p.key, eps) & set(id_list)) for p in plans for eps in budgets
    )
    evaluation = summarise(
        store,
        run_key,
        plans,
        budgets,
        id_list,
        examples=examples,
        reused=held - attacked,
        attacked=attacked,
        seconds=seconds,
    )
    kept = [ex.with_clean_scores(classifier) for ex in evaluation.examples]
    return replace(evaluation, examples=kept)


def _attack_all(
    model: Model,
    plans: Sequence[AttackSpec],
    budgets: Sequence[float],
    source: Source,
    tickets: Sequence[Ticket],
    store: ResultStore,
    run_key: str,
    keep: set[int],
    progress: bool,
) -> int:
    """Attack every ticket in this process, storing each piece as soon as it is done; how
    many (attack, budget, sample) results were computed."""
    stages = [(a, float(e)) for a in range(len(plans)) for e in budgets]
    todo = sum(t.missing(stage) for t in tickets for stage in stages)
    attacked = 0
    with show_progress(todo, "evaluate", progress, unit="sample") as bar:
        for ticket in tickets:
            for piece in attack_ticket(model, plans, budgets, source, ticket):
                write(store, run_key, plans, piece, keep)
                attacked += len(piece.ids)
                if piece.skipped:
                    bar.total -= piece.skipped
                    bar.refresh()
                bar.update(len(piece.ids))
    return attacked


def summarise(
    store: ResultStore,
    run_key: str,
    plans: Sequence[AttackSpec],
    budgets: Sequence[float],
    ids: Sequence[int],
    *,
    examples: int = DEFAULT_EXAMPLES,
    reused: int = 0,
    attacked: int = 0,
    seconds: float = 0.0,
) -> Evaluation:
    """The :class:`Evaluation` of the stored rows of ``plans`` at ``budgets`` on ``ids``."""
    norms = {p.label: p.build(budgets[0]).norm.value for p in plans}
    per_attack: dict[str, list[dict[str, Any]]] = {p.label: [] for p in plans}
    summaries, kept, worst, adversarial = [], [], [], []
    for eps in budgets:
        own: list[AttackResult] = []
        standing = set(ids)
        for plan in plans:
            wanted = [sid for sid in ids if sid in standing] if plan.survivors_only else ids
            rows_of = store.result(run_key, plan.key, eps, wanted)
            own.append(replace(rows_of, attack=plan.label, norm=norms[plan.label]))
            standing -= fallen_ids(rows_of)
        for plan, result in zip(plans, own, strict=True):
            per_attack[plan.label].append(_with_interval(result.summary(), result.robust))
        rows = [own[0], *(_aligned(r, own[0], ids) for r in own[1:])]
        case, picked = worst_case(rows, [p.label for p in plans])
        worst.append(case)
        combined = _pick(rows, picked) if len(plans) > 1 else rows[0]
        adversarial.append(combined.pred_adv)
        summaries.append(
            _worst_summary(rows, case, combined)
            if len(plans) > 1
            else per_attack[plans[0].label][-1]
        )
        kept.append(_examples(store, run_key, plans, eps, picked, combined, ids[:examples]))
    first = plans[0].label
    return Evaluation(
        run_key=run_key,
        attack=first if len(plans) == 1 else " + ".join(p.label for p in plans),
        norm=norms[first],
        eps=list(budgets),
        summaries=summaries,
        examples=kept,
        reused=reused,
        attacked=attacked,
        seconds=seconds,
        attacks=[p.label for p in plans],
        per_attack=per_attack,
        worst=worst,
        ids=torch.tensor(list(ids), dtype=torch.long),
        keys={p.label: p.key for p in plans},
        y=rows[0].y,
        pred_adv=adversarial,
    )


def _aligned(result: AttackResult, base: AttackResult, ids: Sequence[int]) -> AttackResult:
    """``result`` on every sample of ``base`` (whose ids are ``ids``), in its order: a
    sample ``result`` does not hold (a survivors-only attack did not attack it) gets a row
    that breaks nothing and costs nothing, so that it never counts in the worst case."""
    if len(result) == len(base):
        return result
    held = {int(sid): i for i, sid in enumerate(result.ids.tolist())}
    missing = torch.tensor([sid not in held for sid in ids], dtype=torch.bool)
    skipped = base.select(missing)
    k = len(skipped)
    zero, none = torch.zeros(k), torch.zeros(k, dtype=torch.long)
    filler = replace(
        skipped,
        success=torch.zeros(k, dtype=torch.bool),
        pred_adv=skipped.y.clone(),
        confidence_adv=torch.full((k,), float("nan")),
        l0=zero,
        l1=zero,
        l2=zero,
        linf=zero,
        gradients=none,
        queries=none,
        verification_queries=none,
        nonfinite=torch.zeros(k, dtype=torch.bool),
        exhausted=torch.zeros(k, dtype=torch.bool),
        target=None if result.target is None else torch.full((k,), -1, dtype=torch.long),
        min_eps=None if result.min_eps is None else torch.full((k,), math.inf),
        attack=result.attack,
        norm=result.norm,
        seconds=0.0,
    )
    joined = AttackResult.concat([result, filler])
    position = {sid: i for i, sid in enumerate(joined.ids.tolist())}
    return joined.select(torch.tensor([position[int(sid)] for sid in ids], dtype=torch.long))


def worst_case(
    results: Sequence[AttackResult], labels: Sequence[str]
) -> tuple[WorstCaseRecord, Tensor]:
    """The per-sample worst case over ``results`` (one per attack, rows in the same order),
    and which result each sample's worst case is taken from.

    A sample is broken by an attack when it was classified correctly before and is not after
    (what robust accuracy counts); the worst case breaks it when any attack does (the OR over
    the attacks), and its row is the first attack's that broke it (else the first that met
    its goal, else the first attack's).
    """
    first = results[0]
    correct = first.correct_clean
    broken = torch.stack([correct & (r.pred_adv != r.y) for r in results])
    success = torch.stack([r.success for r in results])
    any_broken = broken.any(dim=0)
    picked = torch.where(
        any_broken,
        broken.int().argmax(dim=0),
        torch.where(success.any(dim=0), success.int().argmax(dim=0), 0),
    )
    broken_by = [labels[int(a)] if b else None for a, b in zip(picked, any_broken, strict=True)]
    case = WorstCaseRecord(
        ids=first.ids,
        correct_clean=correct,
        broken=broken,
        robust=correct & ~any_broken,
        broken_by=broken_by,
    )
    return case, picked


def _pick(results: Sequence[AttackResult], picked: Tensor) -> AttackResult:
    """Per sample, the row of ``results[picked[i]]``; the clean prediction of the first."""
    rows = torch.arange(len(picked))
    fields: dict[str, Any] = {}
    for name in (
        "success",
        "pred_adv",
        "confidence_adv",
        "l0",
        "l1",
        "l2",
        "linf",
        "nonfinite",
        "exhausted",
    ):
        fields[name] = torch.stack([getattr(r, name) for r in results])[picked, rows]
    targets = [r.target for r in results]
    if all(t is not None for t in targets):
        fields["target"] = torch.stack(targets)[picked, rows]  # type: ignore[arg-type]
    else:
        fields["target"] = None
    fields["min_eps"] = None
    fields["gradients"] = torch.stack([r.gradients for r in results]).sum(dim=0)
    fields["queries"] = torch.stack([r.queries for r in results]).sum(dim=0)
    fields["verification_queries"] = torch.stack([r.verification_queries for r in results]).sum(
        dim=0
    )
    fields["seconds"] = float(sum(r.seconds for r in results))
    return replace(results[0], attack=WORST_CASE, **fields)


def _with_interval(summary: dict[str, Any], robust: Tensor) -> dict[str, Any]:
    """``summary`` with the robust count and the Clopper-Pearson interval of robust accuracy."""
    k, n = int(robust.sum()), len(robust)
    low, high = clopper_pearson(k, n)
    return {**summary, "robust_count": k, "robust_ci_low": low, "robust_ci_high": high}


def _worst_summary(
    results: Sequence[AttackResult], case: WorstCaseRecord, combined: AttackResult
) -> dict[str, Any]:
    """The summary of the worst case (``combined``, the picked rows, with every attack's
    cost): its numbers, how many samples each attack broke first and alone, and robust
    accuracy after each attack and those before it (``robust_after``, with its interval:
    what a suite's later attacks, run on the samples still standing, add)."""
    labels = [r.attack for r in results]
    summary = _with_interval(combined.summary(), case.robust)
    first = {label: 0 for label in labels}
    for label in case.broken_by:
        if label is not None:
            first[label] += 1
    alone = case.broken & (case.broken.sum(dim=0, keepdim=True) == 1)
    summary["broken_by"] = first
    summary["broken_alone"] = {label: int(alone[a].sum()) for a, label in enumerate(labels)}
    summary["robust_after"] = {
        label: _interval(case.correct_clean & ~case.broken[: a + 1].any(dim=0))
        for a, label in enumerate(labels)
    }
    return summary


def _interval(robust: Tensor) -> dict[str, float]:
    """Robust accuracy of the mask ``robust`` with its Clopper-Pearson interval."""
    k, n = int(robust.sum()), len(robust)
    low, high = clopper_pearson(k, n)
    return {
        "robust_accuracy": k / n if n else math.nan,
        "robust_ci_low": low,
        "robust_ci_high": high,
    }


def _examples(
    store: ResultStore,
    run_key: str,
    plans: Sequence[AttackSpec],
    eps: float,
    picked: Tensor,
    combined: AttackResult,
    kept_ids: Sequence[int],
) -> Examples:
    """The kept images at ``eps``: for each of the first samples, those of the attack its
    worst case is taken from (``picked``; ``combined`` holds the picked rows)."""
    images = [dict(_by_id(*store.examples(run_key, p.key, eps))) for p in plans]
    position = {int(sid): i for i, sid in enumerate(combined.ids.tolist())}
    found = [sid for sid in kept_ids if sid in images[int(picked[position[sid]])]]
    if not found:
        return Examples.empty()
    rows = torch.tensor([position[sid] for sid in found], dtype=torch.long)
    chosen = [images[int(picked[i])][sid] for i, sid in zip(rows.tolist(), found, strict=True)]
    return Examples(
        indices=list(found),
        y=combined.y[rows],
        pred_clean=combined.pred_clean[rows],
        confidence_clean=torch.full((len(found),), float("nan")),
        pred_adv=combined.pred_adv[rows],
        confidence_adv=combined.confidence_adv[rows],
        success=combined.success[rows],
        clean=torch.stack([clean for clean, _ in chosen]),
        adversarial=torch.stack([adv for _, adv in chosen]),
    )


def _by_id(ids: list[int], clean: Tensor, adversarial: Tensor) -> Iterator[tuple[int, Any]]:
    for i, sid in enumerate(ids):
        yield sid, (clean[i], adversarial[i])
