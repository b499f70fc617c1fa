"""An evaluation from its spec to its report, in phases: plan, attack, summarise, check,
report.

One output folder holds one evaluated **run** (:attr:`~brittle.eval.plan.Plan.identity`:
the model's content, the data's content, the threat model and the seed). Its attacks run at
each budget on every drawn sample; the store keys each per-sample result by (run, attack,
eps, target, sample id), so running the same evaluation again, or resuming it from the spec
the store keeps, attacks only what is not stored yet, and adding an attack or a budget
reuses everything already there. A folder whose store holds another run is refused: its
results are never mixed with or replaced by another model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brittle.checks.defended import defense_check
from brittle.checks.outcome import SanityCheck
from brittle.checks.probes import PROBE_SAMPLES, probe_checks
from brittle.checks.probes import labels as probe_labels
from brittle.checks.sweep import recorded_accuracy_check, sweep_checks
from brittle.classifier import Classifier
from brittle.distributed import agree, from_leader, join, together
from brittle.errors import InputError
from brittle.eval.chunks import attack_ticket
from brittle.eval.lock import folder_lock
from brittle.eval.plan import Plan, failure_warnings, make_plan, raised_stage
from brittle.eval.randomised import settle_randomness
from brittle.eval.runner import Evaluation, evaluate
from brittle.eval.sharing import Share
from brittle.eval.spec import AttackSpec, EvaluationSpec
from brittle.eval.store import SCHEMA_VERSION, ResultStore
from brittle.eval.suite import RAISE
from brittle.eval.tables import export_tables
from brittle.eval.victim import Victim, open_victim
from brittle.files import check_outputs
from brittle.report.content import build_report, finite
from brittle.report.html import ReportPaths, write_report

STORE_NAME = "results.sqlite"
EVALUATION = ("evaluation", "evaluate")
"""The (kind, key) of the store's record of the evaluation's spec (what a resume reads)."""
BOUND = "bound"
"""The kind of the store's record of the bound on robust accuracy (key: the run)."""
SUMMARY = "summary"
"""The kind of the store's record of a run's summary (key: the run)."""
OPTIONS = ("options", "evaluate")
"""The (kind, key) of the store's record of the command-line options the evaluation was
started with (what a resume checks options stated again against)."""

Log = Callable[[str], None]
"""Where an evaluation says what it is doing while it runs (the command line prints it)."""


def quiet(message: str) -> None:
    """A log that drops its messages."""


@dataclass(frozen=True)
class EvaluateOutcome:
    """An evaluation over budgets and the report written for it (and the tables exported,
    when asked for)."""

    evaluation: Evaluation
    report: dict[str, Any]
    paths: ReportPaths
    store: Path
    spec: EvaluationSpec
    exported: tuple[Path, ...] = ()


def run_evaluation(
    spec: EvaluationSpec,
    out: str | Path,
    *,
    victim: Victim | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
    export: bool = False,
    options: dict[str, Any] | None = None,
    certify: str | None = None,
) -> EvaluateOutcome | None:
    """Run ``spec`` into the folder ``out``: ``results.sqlite``, ``report.json`` and
    ``report.html`` (and the tables as CSV and JSON with ``export``).

    ``victim``: the model and samples, when the caller opened them (Python objects);
    otherwise they are opened from the spec on ``device``. ``out`` is checked to be
    writable and locked (:func:`~brittle.eval.lock.folder_lock`) before any work and stays
    locked until the report is written. A store of another run or another schema is
    refused. Every attack is checked against the threat before any sample is attacked.
    ``options``: the command-line options the spec was made from, kept beside it.
    ``certify`` (``"auto"``, ``"ibp"`` or ``"smoothing"``): certify every sample too and
    report the certified radii beside the attacked ones (:mod:`brittle.eval.certified`).

    In a job of several processes (``torchrun``, or a process group the caller started),
    every rank opens the model and the data and the ranks share the chunks
    (:mod:`brittle.eval.sharing`); rank 0 alone writes the store and the report and returns
    the outcome, the other ranks return ``None``. Each rank's device is its own
    (:func:`brittle.distributed.join`).
    """
    out = Path(out)
    place, chosen = join(device)
    if not place.distributed:
        check_outputs(_outputs(out, export), _inputs(spec))
        with folder_lock(out):
            victim = victim or open_victim(spec.model, spec.data, seed=spec.seed, device=chosen)
            settle_randomness(victim, spec.batch_size)
            plan = make_plan(spec, victim)
            return _run(plan, out, None, progress, log, export, options, certify=certify)
    with together("checking the output folder"):
        if place.leader:
            check_outputs(_outputs(out, export), _inputs(spec))
    with together("opening the model and the data"):
        opened = victim or open_victim(spec.model, spec.data, seed=spec.seed, device=chosen)
        settle_randomness(opened, spec.batch_size)
    with together("settling the attacks and the threat"):
        plan = make_plan(spec, opened)
    agree(plan.identity, "the run (model, data, threat and seed)")
    if place.size > len(opened.ids):
        raise InputError(
            f"{place.size} processes for {len(opened.ids)} samples: start at most "
            f"{len(opened.ids)} (--nproc-per-node), or evaluate more samples"
        )
    budgets = [float(e) for e in spec.eps]

    def shared(attacks: tuple[AttackSpec, ...]) -> Share:
        return Share.open(
            place,
            attacks,
            budgets,
            plan.key,
            lambda ticket: attack_ticket(opened.model, attacks, budgets, opened.source, ticket),
        )

    share = shared(plan.attacks)
    if not place.leader:
        share.follow()
        raised = from_leader(lambda: None)  # the leader's decision (see _run)
        if raised is not None:
            shared((*plan.attacks, raised)).follow()
        return None
    try:
        with folder_lock(out):
            return _run(plan, out, share, progress, log, export, options, shared, certify)
    except BaseException as err:
        if not share.started:
            share.fail(err)
        raise


def _run(
    plan: Plan,
    out: Path,
    share: Share | None,
    progress: bool,
    log: Log,
    export: bool,
    options: dict[str, Any] | None,
    shared: Callable[[tuple[AttackSpec, ...]], Share] | None = None,
    certify: str | None = None,
) -> EvaluateOutcome:
    """The evaluation of ``plan`` into the locked folder ``out`` (with ``share``, the
    leader's part of a shared one; ``shared`` shares another list of attacks).

    A suite whose black-box stage broke samples that every stronger attack left standing
    runs that stage once more with raised queries (:func:`~brittle.eval.plan.raised_stage`):
    a second pass in which every stored row is reused, every rank taking part."""
    spec, victim = plan.spec, plan.victim
    if certify is not None:  # an unknown method or a model it cannot certify: refused now
        from brittle.eval.certified import certifier

        certifier(victim.model, certify, plan.threat.norm, spec.batch_size)
    store_path = out / STORE_NAME
    with ResultStore(store_path, classes=victim.model.num_classes) as store:
        _check_same_run(store, plan, out)
        store.register(plan.key, plan.identity)
        for attack in plan.attacks:
            store.register_attack(attack.spec)
        store.put_record(*EVALUATION, {"spec": _saved(spec), "run": plan.key})
        if options is not None:
            store.put_record(*OPTIONS, options)
        _log_resume(store, plan, log)
        evaluation = _attack(plan, store, share, progress)
        raised = from_leader(lambda: raised_stage(plan, evaluation))
        if raised is not None:
            log(f"raising the black-box budget once: {raised.label} on the samples still standing")
            plan = plan.with_stage(raised)
            store.register_attack(raised.spec)
            again = shared(plan.attacks) if shared is not None and share is not None else None
            evaluation = _attack(plan, store, again, progress)
        report = _report(plan, evaluation, store_path)
        if spec.generator is not None:
            report["bound"] = _bound(spec.generator, plan, evaluation)
            store.put_record(BOUND, plan.key, report["bound"])
        if certify is not None:
            from brittle.eval.certified import add_sandwich

            add_sandwich(report, plan, evaluation, store, certify, log)
        store.put_record(SUMMARY, plan.key, _summary_record(report))
        exported = export_tables(store, evaluation, out) if export else ()
    paths = write_report(out, report, evaluation, class_names(victim))
    return EvaluateOutcome(evaluation, report, paths, store_path, spec, exported)


def _attack(plan: Plan, store: ResultStore, share: Share | None, progress: bool) -> Evaluation:
    """Every attack of ``plan`` at every budget on its samples, what ``store`` holds reused."""
    spec, victim = plan.spec, plan.victim
    return evaluate(
        victim.model,
        plan.attacks,
        victim.source,
        spec.eps,
        batch_size=spec.batch_size,
        store=store,
        run_key=plan.key,
        ids=victim.ids,
        progress=progress,
        share=share,
    )


def _outputs(out: Path, export: bool) -> dict[str, Path]:
    """The files an evaluation writes into ``out``, by what the messages call them."""
    names = [STORE_NAME, "report.json", "report.html"]
    if export:
        names += [
            f"{t}.{ext}" for t in ("samples", "worst_case", "results") for ext in ("csv", "json")
        ]
    return {f"--out ({name})": out / name for name in names}


def _inputs(spec: EvaluationSpec) -> dict[str, str | None]:
    """The files an evaluation reads, which none of its outputs may replace."""
    model = spec.model.spec
    if ".py:" in model:
        model = model.rsplit(":", 1)[0]
    return {
        "--model": None if model.startswith("<") else model,
        "--weights": spec.model.weights,
        "--data-dir": spec.data.data_dir,
        "--generator": spec.generator,
    }


def saved_spec(out: str | Path) -> EvaluationSpec:
    """The spec of the evaluation kept in ``out``'s store (what a resume runs)."""
    path = Path(out) / STORE_NAME
    if not path.is_file():
        raise InputError(
            f"there is nothing to resume in {out}: it has no {STORE_NAME}; start the evaluation "
            "with --out instead of --resume"
        )
    with ResultStore(path, create=False, read_only=True) as store:
        saved = store.record(*EVALUATION)
    if saved is None or not isinstance(saved.get("spec"), dict):
        raise InputError(
            f"{path} holds no evaluation that can be resumed from its record (one made by "
            "another version of brittle, or from Python with attacks brittle does not know); "
            "run it again with the same options"
        )
    return EvaluationSpec.from_json(saved["spec"])


def class_names(victim: Victim) -> list[str]:
    """A name for every class the model outputs: the data's, then the model's recorded
    ones, then the index (a model may output classes the evaluated data do not hold)."""
    names = list(victim.source.classes)
    recorded = victim.meta.get("classes") or []
    count = max(len(names), int(getattr(victim.model, "num_classes", None) or 0))
    for k in range(len(names), count):
        names.append(str(recorded[k]) if k < len(recorded) else str(k))
    return names


def _saved(spec: EvaluationSpec) -> dict[str, Any] | None:
    """The spec as the store keeps it; ``None`` when it cannot be written down (attacks
    built by factories: such an evaluation resumes from Python only)."""
    try:
        return spec.as_json()
    except InputError:
        return None


def _checks(plan: Plan, evaluation: Evaluation) -> list[SanityCheck]:
    """The sanity checks: those of the sweep, the recorded accuracy, and those that query
    the model on the first samples."""
    victim, spec = plan.victim, plan.spec
    x, y, ids = victim.first(PROBE_SAMPLES)
    first = evaluation.summaries[0]
    recorded = victim.meta.get("accuracy")
    return [
        *sweep_checks(evaluation.eps, evaluation.summaries),
        recorded_accuracy_check(
            float(first["clean_accuracy"]),
            int(first["n"]),
            float(recorded) if isinstance(recorded, int | float) else None,
        ),
        *probe_checks(
            victim.model,
            evaluation,
            plan.attacks,
            x,
            y,
            ids,
            goal=plan.threat.goal,
            seed=spec.seed,
            batch_size=spec.batch_size,
        ),
    ]


def _report(plan: Plan, evaluation: Evaluation, store_path: Path) -> dict[str, Any]:
    """The report of ``plan``'s evaluation, with its checks and warnings."""
    victim, spec = plan.victim, plan.spec
    largest = [a.build(spec.largest) for a in plan.attacks]
    masking = defense_check(victim, largest[0], spec.batch_size, spec.seed)
    if len(plan.attacks) == 1:
        attack_info = plan.attacks[0].spec
    else:
        labels = ", ".join(a.label for a in plan.attacks)
        attack_info = {
            "name": (f"{spec.suite} suite: " if spec.suite else "") + f"worst case of {labels}",
            "params": {a.label: a.spec["params"] for a in plan.attacks},
        }
    report = build_report(
        evaluation,
        threat=plan.threat,
        model={k: v for k, v in victim.meta.items() if k != "classes"},
        dataset=victim.dataset_info(),
        attack=attack_info,
        masking=masking,
        attacks=[
            {"label": a.label, "key": a.key, "survivors_only": a.survivors_only, **a.spec}
            for a in plan.attacks
        ],
        run=plan.identity,
        store={"path": str(store_path), "schema_version": SCHEMA_VERSION},
        checks=_checks(plan, evaluation),
        classes=class_names(victim),
        device=str(victim.model.device),
        eps_text=[b.text for b in spec.eps],
    )
    report["spec"] = _saved(spec)
    substitutes = _substitutes(plan, largest)
    if substitutes:
        report["substitutes"] = substitutes
    if plan.raised is not None:
        stage = plan.raised
        report["raised"] = {"stage": stage.label, "max_queries": stage.params["max_queries"]}
        report["warnings"].append(
            f"the black-box check found samples that a weaker adversary broke and every "
            f"stronger attack left standing, so the suite ran {stage.label} once more, with "
            f"{RAISE} times the queries, on the samples still standing"
        )
    for attack, built in zip(plan.attacks, largest, strict=True):
        top = evaluation.per_attack[attack.label][-1]["success_rate"]
        report["warnings"].extend(
            failure_warnings(attack, built, victim.model, victim.features, top)
        )
    return report


def _substitutes(plan: Plan, built: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """For each transfer attack (:class:`~brittle.attacks.substitute.Substitute`), its
    substitute's agreement with the model on the first samples and the labels its training
    asked of the model (Papernot et al. 2017's two figures besides the transfer rate)."""
    from brittle.attacks.substitute import Substitute

    found: dict[str, dict[str, Any]] = {}
    model = plan.victim.model
    for attack, instance in zip(plan.attacks, built, strict=True):
        fit = instance.fitted(model) if isinstance(instance, Substitute) else None
        if fit is None:
            continue
        x, _, _ = plan.victim.first(PROBE_SAMPLES)
        found[attack.label] = {
            "agreement": fit.agreement(x, probe_labels(model, x)),
            "n": len(x),
            "labels_asked": fit.queries,
            "rounds": len(fit.rounds) - 1,  # round 0 trains on the seed set
        }
    return found


def _bound(generator: str, plan: Plan, evaluation: Evaluation) -> dict[str, Any]:
    """The bound on robust accuracy at each budget on ``generator``'s data
    (:func:`~brittle.bounds.accuracy.robust_accuracy_bound`), with the checkpoint's path."""
    from brittle.bounds.accuracy import robust_accuracy_bound
    from brittle.generators import load_generator

    model = plan.victim.model
    if not isinstance(model, Classifier):
        raise InputError(
            "the bound on robust accuracy classifies the generator's samples through the "
            "model's gradients: it needs a white-box model, not an Oracle; drop --generator"
        )
    gen, meta = load_generator(generator, model.device)
    found = robust_accuracy_bound(model, gen, evaluation.eps, plan.threat.norm, seed=plan.spec.seed)
    keys = ("arch", "latent_dim", "dataset", "epochs", "sha256")
    info = {k: meta[k] for k in keys if k in meta}
    return {"generator": {"path": str(generator), **info}, **found}


def _check_same_run(store: ResultStore, plan: Plan, out: Path) -> None:
    """Refuse a store that holds the evaluation of another run (another model, data, threat
    or seed): one folder, one run, so that no report mixes or replaces another's."""
    saved = store.record(*EVALUATION)
    if saved is None or saved.get("run") == plan.key:
        return
    other = store.record("run", str(saved.get("run"))) or {}
    identity = plan.identity
    differs = [name for name in identity if identity[name] != other.get(name)]
    words = {"model_sha256": "the model", "data": "the data", "threat": "the threat model"}
    what = ", ".join(words.get(name, name) for name in differs) or "the run"
    raise InputError(
        f"{out} holds the evaluation of another run (not the same: {what}); evaluate into a new "
        f"--out folder, resume that one with --resume {out}, or move {out} aside"
    )


def _log_resume(store: ResultStore, plan: Plan, log: Log) -> None:
    """Say how much of the run the store already holds, if anything."""
    ids = set(plan.victim.ids)
    budgets = plan.spec.eps
    found = sum(
        len(store.done(plan.key, a.key, float(e)) & ids) for a in plan.attacks for e in budgets
    )
    if found:
        total = len(budgets) * len(plan.attacks) * len(ids)
        log(
            f"resuming run {plan.key}: {found} of {total} (attack, eps, sample) results are "
            f"already in {store.path}; attacking only the remaining {total - found}"
        )


def _summary_record(report: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a report: the threat, the attacks and the per-budget rows."""
    keys = ("created", "threat_model", "attacks", "results", "per_attack", "timing", "warnings")
    return dict(finite({k: report[k] for k in keys if k in report}))


def check_resume(saved: EvaluationSpec, given: EvaluationSpec, fields: Sequence[str]) -> None:
    """Refuse a resume whose stated ``fields`` contradict the saved spec."""
    mine, theirs = saved.as_json(), given.as_json()
    for name in fields:
        if name in mine and mine[name] != theirs[name]:
            raise InputError(
                f"{name} {theirs[name]!r} contradicts the evaluation saved there "
                f"({mine[name]!r}); drop it to resume, or evaluate into a new --out"
            )
