"""``brittle evaluate``: one attack over several budgets, stored per sample, reported.

The run is identified by the model file's content, the evaluated samples and the attack's
declared parameters (:meth:`~brittle.attacks.base.Attack.config`): rerunning the same
evaluation in the same folder resumes it, attacking only what is not stored yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brittle.errors import InputError
from brittle.eval.runner import Evaluation, evaluate
from brittle.eval.store import ResultStore, run_key
from brittle.files import check_writable
from brittle.report.content import build_report
from brittle.report.html import ReportPaths, write_report
from brittle.threat import Capability, ThreatModel

from .adversary import prepare
from .attack import defense_check
from .common import Log, check_count, load_target, quiet
from .lock import folder_lock

STORE_NAME = "results.sqlite"
DEFAULT_EPS_LIST = (0.05, 0.1, 0.2, 0.3)
"""The budgets of an evaluation when none are given (Goodfellow 2015 used 0.1 to 0.3 on
MNIST, in Linf)."""


@dataclass(frozen=True)
class EvaluateOutcome:
    """An evaluation over budgets and the report written for it."""

    evaluation: Evaluation
    report: dict[str, Any]
    paths: ReportPaths
    store: Path


def evaluate_model(
    *,
    model: str | Path,
    out: str | Path,
    eps_list: Sequence[float] = DEFAULT_EPS_LIST,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    n: int | None = None,
    batch_size: int = 256,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    params: dict[str, Any] | None = None,
    capability: Capability = Capability.WHITE_BOX,
    threat: ThreatModel | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
) -> EvaluateOutcome:
    """Evaluate ``attack`` at each budget of ``eps_list``; write ``out/results.sqlite``,
    ``out/report.json`` and ``out/report.html``.

    The samples are drawn as by :func:`~brittle.tasks.attack.attack` (``n=None``: 1,000,
    or the whole split when it holds fewer).
    ``out`` is checked to be writable and locked (:func:`~brittle.tasks.lock.folder_lock`)
    before any work, and stays locked until the report is written: a second evaluation
    into the same folder is refused at once. The attack at the largest budget is checked
    against ``threat`` (or the threat the options state, see :mod:`brittle.tasks.adversary`)
    before any sample is attacked. Rerunning the same evaluation resumes it (``log`` says
    how much was found).

    The report's warnings are the sanity checks of the sweep
    (:func:`~brittle.eval.sanity.sanity_warnings`) and, for a minimal attack whose largest
    budget is at least the box's diameter (no budget that binds), the warning that it left
    correctly classified samples unbroken
    (:func:`~brittle.eval.sanity.unbounded_failure_warnings`). A defended model (checkpoint
    metadata ``defense``) is also given a gradient-masking check on its first 500 samples
    at the largest budget (:func:`~brittle.tasks.attack.defense_check`): its numbers are the
    report's ``gradient_masking`` and its warnings join the others. An undefended model is
    not checked and its report has no ``gradient_masking``.
    """
    if not eps_list:
        raise InputError("give at least one budget in eps_list (e.g. --eps 0.1,0.2,0.3)")
    check_count(n, "--n")
    out = Path(out)
    check_writable(out / STORE_NAME, option="--out")
    with folder_lock(out):
        victim = load_target(model, dataset, data_dir, split, n, seed, device)
        adversary, largest = prepare(
            attack,
            victim,
            eps=max(eps_list),
            params=params,
            minimize=minimize,
            targeted=targeted,
            target=target,
            capability=capability,
            threat=threat,
            seed=seed,
        )
        attack_info = adversary.describe(largest)
        data_info = victim.dataset_info(data_dir)
        config = {
            "model_sha256": victim.meta["sha256"],
            "data_sha256": data_info["sha256"],
            "dataset": data_info["name"],
            "split": split,
            "n": len(victim.data),
            "seed": seed,
            "attack": attack_info,
        }
        key = run_key(config)
        store_path = out / STORE_NAME
        with ResultStore(store_path) as store:
            store.register(key, config)
            _log_resume(store, key, eps_list, len(victim.data), log)
            evaluation = evaluate(
                victim.classifier,
                adversary.attack,
                victim.data.x,
                victim.data.y,
                eps_list,
                batch_size=batch_size,
                store=store,
                run_key=key,
                target=adversary.target,
                ids=victim.data.ids,
                progress=progress,
            )
        masking = defense_check(victim, largest, batch_size, seed)
        model_info = {k: v for k, v in victim.meta.items() if k != "classes"}
        report = build_report(
            evaluation,
            threat=adversary.threat,
            model=model_info,
            dataset=data_info,
            attack=attack_info,
            masking=masking,
        )
        top = evaluation.summaries[-1]["success_rate"]  # at the largest budget
        report["warnings"].extend(adversary.failure_warnings(largest, victim, top))
        paths = write_report(out, report, evaluation, victim.data.classes)
    return EvaluateOutcome(evaluation=evaluation, report=report, paths=paths, store=store_path)


def _log_resume(store: ResultStore, key: str, eps_list: Sequence[float], n: int, log: Log) -> None:
    """Say how much of the run ``key`` the store already holds, if anything."""
    budgets = set(eps_list)
    found = sum(len(store.done(key, float(e))) for e in budgets)
    if found:
        total = len(budgets) * n
        log(
            f"resuming run {key}: {found} of {total} (eps, sample) results are already in "
            f"{store.path}; attacking only the remaining {total - found}"
        )
