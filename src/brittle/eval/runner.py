"""Running attacks over data sets in batches, and evaluations over several budgets that resume.

:func:`run_attack` attacks a data set batch by batch and joins the results.
:func:`evaluate` does so at each budget ``eps``, writes every batch to a
:class:`~brittle.eval.store.ResultStore` as soon as it is done, skips the samples the store
already holds, and summarises each budget from the stored rows only, so a resumed run
reports exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from brittle.attacks.base import Attack, TargetSpec, check_ids
from brittle.attacks.result import AttackResult
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.model import as_tensor

from .store import ResultStore

DEFAULT_EXAMPLES = 8
"""How many samples (the first ones) have their images kept for the report, per budget."""


@dataclass(frozen=True)
class Examples:
    """The kept images of one budget: sample indices, labels, predictions and inputs."""

    indices: list[int]
    y: Tensor
    pred_adv: Tensor
    success: Tensor
    clean: Tensor
    adversarial: Tensor


@dataclass(frozen=True)
class Evaluation:
    """Per-budget summaries of one run, with the images kept for its report.

    ``summaries[i]`` is :meth:`AttackResult.summary` of budget ``eps[i]`` computed from the
    stored rows; ``reused`` counts the (budget, sample) pairs found in the store and
    ``attacked`` those attacked by this call, which took ``seconds``.
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


def _check_batch(x: Any, y: Any, batch_size: int) -> tuple[Tensor, Tensor]:
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if len(x) == 0:
        raise InputError("there is nothing to attack: x holds no samples")
    if len(y) != len(x):
        raise InputError(f"x has {len(x)} samples but y has {len(y)} labels; they must match")
    return x, y


def _batch_target(target: TargetSpec, index: Tensor | slice) -> TargetSpec:
    return target[index] if isinstance(target, Tensor) else target


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def run_attack(
    classifier: Classifier,
    attack: Attack,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 256,
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
    with tqdm(total=len(x), desc=attack.name, unit="sample", disable=not progress) as bar:
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            target_part = _batch_target(target, part)
            results.append(
                attack(classifier, x[part], y[part], target_part, eps=eps, ids=ids[part])
            )
            bar.update(len(results[-1]))
    return AttackResult.concat(results)


def _examples(store: ResultStore, key: str, eps: float, rows: AttackResult) -> Examples:
    indices, clean, adversarial = store.examples(key, eps)
    pick = torch.tensor(indices, dtype=torch.long)
    return Examples(
        indices=indices,
        y=rows.y[pick],
        pred_adv=rows.pred_adv[pick],
        success=rows.success[pick],
        clean=clean,
        adversarial=adversarial,
    )


def evaluate(
    classifier: Classifier,
    attack_factory: Callable[[float], Attack],
    x: Tensor,
    y: Tensor,
    eps_list: Sequence[float],
    *,
    batch_size: int,
    store: ResultStore,
    run_key: str,
    target: TargetSpec = None,
    ids: Tensor | None = None,
    progress: bool = True,
    examples: int = DEFAULT_EXAMPLES,
) -> Evaluation:
    """Attack ``x`` at each budget in ``eps_list`` (sorted), resuming from ``store``.

    ``attack_factory(eps)`` builds the attack of budget ``eps``; each call is also held to
    ``eps``, so a minimal-perturbation attack counts as a success only within the budget.
    Samples already stored under ``(run_key, eps)`` are not attacked again. Every batch is
    stored as soon as it is done; the summaries are computed from the stored rows. ``ids``
    seed the samples' random draws as in :func:`run_attack`, so a resumed run draws what an
    uninterrupted one would.
    """
    x, y = _check_batch(x, y, batch_size)
    ids = check_ids(ids, len(x), x.device)
    budgets = sorted({float(e) for e in eps_list})
    if not budgets or any(not math.isfinite(e) or e < 0 for e in budgets):
        raise InputError(f"eps_list must hold finite budgets >= 0, got {list(eps_list)}")
    attacks = {eps: attack_factory(eps) for eps in budgets}
    pending = {eps: sorted(set(range(len(x))) - store.done(run_key, eps)) for eps in budgets}
    todo = sum(len(p) for p in pending.values())
    start = time.perf_counter()
    with tqdm(total=todo, desc="evaluate", unit="sample", disable=not progress) as bar:
        for eps in budgets:
            attack = attacks[eps]
            bar.set_postfix_str(f"{attack.name} eps={eps:g}")
            for chunk in _chunks(pending[eps], batch_size):
                index = torch.tensor(chunk, dtype=torch.long)
                xb = x[index]
                target_b = _batch_target(target, index)
                result = attack(classifier, xb, y[index], target_b, eps=eps, ids=ids[index])
                store.insert(run_key, eps, chunk, result, x=xb, examples=examples)
                bar.update(len(chunk))
    seconds = time.perf_counter() - start
    summaries, kept = [], []
    for eps in budgets:
        attack = attacks[eps]
        rows = replace(store.result(run_key, eps), attack=attack.name, norm=attack.norm.value)
        summaries.append(rows.summary())
        kept.append(_examples(store, run_key, eps, rows))
    first = attacks[budgets[0]]
    return Evaluation(
        run_key=run_key,
        attack=first.name,
        norm=first.norm.value,
        eps=budgets,
        summaries=summaries,
        examples=kept,
        reused=len(budgets) * len(x) - todo,
        attacked=todo,
        seconds=seconds,
    )
