"""``brittle evaluate``: attacks over several budgets, stored per sample, reported.

One output folder holds one evaluated **run**: the model file's content, the data (name,
split and the split's content hash), the threat model and the seed
(:func:`run_identity`). Its attacks (one or a list, each with its own parameters) run at each
budget on every sample; the store keys each per-sample result by (run, attack spec, eps,
target, sample id), so rerunning the same evaluation, or ``--resume DIR`` which re-reads the
saved options, attacks only what is not stored yet, and adding an attack or a budget reuses
everything already there. A folder that holds another run is refused: its results are never
mixed with or replaced by another model's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brittle.attacks.base import Attack
from brittle.attacks.registry import accepted_parameters, attack_class, minimize_parameters
from brittle.bounds.accuracy import robust_accuracy_bound
from brittle.data import load_dataset
from brittle.errors import InputError
from brittle.eval.probes import probe_checks
from brittle.eval.runner import AttackPlan, Evaluation, evaluate
from brittle.eval.sanity import sweep_checks
from brittle.eval.store import SCHEMA_VERSION, ResultStore, run_key
from brittle.eval.suite import suite_attacks
from brittle.eval.tables import export_tables
from brittle.files import check_writable
from brittle.generators import load_generator
from brittle.report.content import build_report
from brittle.report.html import ReportPaths, write_report
from brittle.threat import Capability, Goal, ThreatModel

from .adversary import Adversary, prepare
from .attack import defense_check
from .common import Log, Target, check_count, load_target, quiet
from .lock import folder_lock

STORE_NAME = "results.sqlite"
DEFAULT_EPS_LIST = (0.05, 0.1, 0.2, 0.3)
"""The budgets of an evaluation when none are given (Goodfellow 2015 used 0.1 to 0.3 on
MNIST, in Linf)."""
EVALUATION = ("evaluation", "evaluate")
"""The (kind, key) of the store's record of the evaluation's options (what ``--resume``
reads)."""
BOUND = "bound"
"""The kind of the store's record of the bound on robust accuracy (key: the run)."""
SUMMARY = "summary"
"""The kind of the store's record of a run's summary (key: the run)."""
RESUME_FREE = frozenset({"batch_size", "device", "progress", "log", "export"})
"""Options ``--resume`` may change: they do not change the results."""


@dataclass(frozen=True)
class EvaluateOutcome:
    """An evaluation over budgets and the report written for it (and the tables exported,
    when asked for)."""

    evaluation: Evaluation
    report: dict[str, Any]
    paths: ReportPaths
    store: Path
    exported: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AttackItem:
    """One attack of an evaluation as asked for: its name, its own parameters, its label.

    From the text ``NAME[:PARAM=VALUE[:PARAM=VALUE...]]`` (``pgd:steps=40:restarts=2``) by
    :func:`parse_attack`; the label is that text, normalised. ``survivors_only``: a suite's
    attack that runs only on the samples its earlier attacks left standing.
    """

    name: str
    params: dict[str, Any]
    label: str
    survivors_only: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "label": self.label,
            "survivors_only": self.survivors_only,
        }


def parse_attack(item: str | AttackItem | Mapping[str, Any]) -> AttackItem:
    """An attack of ``attacks=`` as an :class:`AttackItem`.

    A text ``NAME[:PARAM=VALUE...]`` names a registered attack and its own parameters; each
    value is parsed to the parameter's declared type (``true``/``false`` for a flag) and
    checked when the attack is built. A parameter is its name or its flag without dashes
    (``step_size`` or ``step-size``). The budget is the evaluation's (``eps_list``).
    """
    if isinstance(item, AttackItem):
        return item
    if isinstance(item, Mapping):
        return AttackItem(
            str(item["name"]),
            dict(item.get("params") or {}),
            str(item["label"]),
            bool(item.get("survivors_only", False)),
        )
    name, *assignments = [part.strip() for part in str(item).split(":")]
    cls = attack_class(name)
    declared = {p.name: p for p in (*cls.params, *minimize_parameters())}
    by_flag = {p.name.replace("_", "-"): p for p in declared.values()}
    params: dict[str, Any] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        key = key.strip().lstrip("-")
        p = declared.get(key) or by_flag.get(key)
        if not sep or p is None or p.name == "eps":
            what = (
                "the budget is --eps, for every attack"
                if key == "eps"
                else (f"its parameters are {', '.join(accepted_parameters(cls))}")
            )
            raise InputError(
                f"cannot read {text!r} in the attack {item!r}: write NAME:PARAM=VALUE (e.g. "
                f"pgd:steps=40:restarts=2); {what}"
            )
        params[p.name] = _convert(p.kind, value.strip(), f"{p.name} of {name}")
    label = ":".join([name.lower(), *(f"{k}={_show(v)}" for k, v in params.items())])
    return AttackItem(name.lower(), params, label)


def _convert(kind: type, text: str, what: str) -> Any:
    if kind is bool:
        words = {"true": True, "on": True, "yes": True, "1": True}
        words |= {"false": False, "off": False, "no": False, "0": False}
        if text.lower() not in words:
            raise InputError(f"{what} must be true or false, got {text!r}")
        return words[text.lower()]
    try:
        return kind(text)
    except ValueError:
        word = {int: "an integer", float: "a number"}.get(kind, "text")
        raise InputError(f"{what} must be {word}, got {text!r}") from None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def evaluate_model(
    *,
    model: str | Path,
    out: str | Path,
    eps_list: Sequence[float] = DEFAULT_EPS_LIST,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    attacks: Sequence[str | AttackItem | Mapping[str, Any]] | None = None,
    suite: str | None = None,
    generator: str | Path | None = None,
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
    export: bool = False,
) -> EvaluateOutcome:
    """Evaluate ``attack`` (or each of ``attacks``) at each budget of ``eps_list``; write
    ``out/results.sqlite``, ``out/report.json`` and ``out/report.html``.

    ``attacks``: a list of ``NAME[:PARAM=VALUE...]`` texts (:func:`parse_attack`); ``params``
    then go to every listed attack that declares them (one that none declares is refused).
    With one attack, the report is that attack's; with several, each budget's row is the
    per-sample worst case over them (a sample is broken if any attack breaks it), with
    which attack broke it first, and each attack's own rows beside it. Robust accuracy comes
    with its 95% Clopper-Pearson interval. ``export``: also write the tables as CSV and JSON
    (:func:`~brittle.eval.tables.export_tables`).

    The samples are drawn as by :func:`~brittle.tasks.attack.attack` (``n=None``: 1,000,
    or the whole split when it holds fewer).
    ``out`` is checked to be writable and locked (:func:`~brittle.tasks.lock.folder_lock`)
    before any work, and stays locked until the report is written: a second evaluation
    into the same folder is refused at once. A folder whose store holds another run (another
    model file, data, threat or seed) is refused, and so is a store that is not of this
    schema (:data:`~brittle.eval.store.SCHEMA_VERSION`). Each attack at the largest budget is
    checked against ``threat`` (or the threat the options state, see
    :mod:`brittle.tasks.adversary`) before any sample is attacked; the attacks must state
    the same threat. Rerunning the same evaluation resumes it (``log`` says how much was
    found), whatever the batch size.

    ``suite`` (``"standard"``, :mod:`brittle.eval.suite`) replaces ``attacks``: the suite's
    attacks for the stated threat, the later ones on the samples still standing, per sample
    the worst case. ``generator``, a generator checkpoint of the data, adds ``bound`` to the
    report: per budget the most robust accuracy any classifier can have on its data
    (:func:`~brittle.bounds.accuracy.robust_accuracy_bound`), also kept in the store.

    The report's ``sanity_checks`` are those of the sweep
    (:func:`~brittle.eval.sanity.sweep_checks`) and those that query the model on the first
    samples (:func:`~brittle.eval.probes.probe_checks`), each passed, a warning or not run;
    its ``warnings`` are the messages of those that warned and, for a minimal attack whose
    largest budget is at least the box's diameter (no budget that binds), the warning that it
    left correctly classified samples unbroken
    (:func:`~brittle.eval.sanity.unbounded_failure_warnings`). A defended model (checkpoint
    metadata ``defense``) is also given a gradient-masking check on its first 500 samples
    at the largest budget of the first attack (:func:`~brittle.tasks.attack.defense_check`):
    its numbers are the report's ``gradient_masking`` and its warnings join the others. An
    undefended model is not checked and its report has no ``gradient_masking``.
    """
    if not eps_list:
        raise InputError("give at least one budget in eps_list (e.g. --eps 0.1,0.2,0.3)")
    check_count(n, "--n")
    if suite is not None:
        items = _suite_items(suite, attacks, params, threat, capability, targeted, target, minimize)
    else:
        items = [parse_attack(a) for a in (attacks if attacks else [attack])]
    labels = [item.label for item in items]
    if len(set(labels)) != len(labels):
        raise InputError(f"an attack is listed twice: {', '.join(labels)}")
    out = Path(out)
    store_path = out / STORE_NAME
    check_writable(store_path, option="--out")
    options = {
        "model": str(model),
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(data_dir),
        "split": split,
        "n": n,
        "attacks": [item.as_json() for item in items],
        "suite": suite,
        "generator": None if generator is None else str(generator),
        "params": dict(params or {}),
        "eps_list": sorted({float(e) for e in eps_list}),
        "targeted": targeted,
        "target": target,
        "minimize": minimize,
        "capability": capability.name.lower(),
        "threat": None if threat is None else _threat_json(threat),
        "seed": seed,
    }
    with folder_lock(out):
        victim = load_target(model, dataset, data_dir, split, n, seed, device)
        if suite is not None:  # the score-based stage depends on the inputs' layout
            shape = tuple(victim.data.x.shape[1:])
            items = _suite_items(
                suite, attacks, params, threat, capability, targeted, target, minimize, shape
            )
            options["attacks"] = [item.as_json() for item in items]
        largest = max(eps_list)
        built = _adversaries(
            items,
            victim,
            largest,
            params or {},
            minimize,
            targeted,
            target,
            capability,
            threat,
            seed,
        )
        first, first_attack = built[0]
        plans = [
            AttackPlan(
                label=item.label,
                spec=adversary.describe(attack_at_max),
                build=adversary.attack,
                target=adversary.target,
                survivors_only=item.survivors_only,
            )
            for item, (adversary, attack_at_max) in zip(items, built, strict=True)
        ]
        data_info = victim.dataset_info(data_dir)
        identity = run_identity(victim, first.threat, split, data_dir, seed)
        key = run_key(identity)
        with ResultStore(store_path) as store:
            _check_same_run(store, key, identity, out)
            store.register(key, identity)
            for plan in plans:
                store.register_attack(plan.spec)
            store.put_record(*EVALUATION, {**options, "run": key})
            _log_resume(store, key, plans, eps_list, victim, log)
            evaluation = evaluate(
                victim.classifier,
                plans,
                victim.data.x,
                victim.data.y,
                eps_list,
                batch_size=batch_size,
                store=store,
                run_key=key,
                ids=victim.data.ids,
                progress=progress,
            )
            masking = defense_check(victim, first_attack, batch_size, seed)
            checks = [
                *sweep_checks(evaluation.eps, evaluation.summaries),
                *probe_checks(
                    victim.classifier,
                    evaluation,
                    plans,
                    victim.data.x,
                    victim.data.y,
                    victim.data.ids,
                    goal=first.threat.goal,
                    seed=seed,
                    batch_size=batch_size,
                ),
            ]
            model_info = {k: v for k, v in victim.meta.items() if k != "classes"}
            if len(plans) == 1:
                attack_info = plans[0].spec
            else:
                attack_info = {
                    "name": (f"{suite} suite: " if suite else "")
                    + f"worst case of {', '.join(item.label for item in items)}",
                    "params": {plan.label: plan.spec["params"] for plan in plans},
                }
            report = build_report(
                evaluation,
                threat=first.threat,
                model=model_info,
                dataset=data_info,
                attack=attack_info,
                masking=masking,
                attacks=[
                    {"label": p.label, "key": p.key, "survivors_only": p.survivors_only, **p.spec}
                    for p in plans
                ],
                run=identity,
                store={"path": str(store_path), "schema_version": SCHEMA_VERSION},
                checks=checks,
                classes=victim.data.classes,
                device=str(victim.classifier.device),
            )
            for plan, (adversary, attack_at_max) in zip(plans, built, strict=True):
                top = evaluation.per_attack[plan.label][-1]["success_rate"]
                report["warnings"].extend(adversary.failure_warnings(attack_at_max, victim, top))
            if generator is not None:
                report["bound"] = _bound(generator, victim, evaluation, first.threat, seed)
                store.put_record(BOUND, key, report["bound"])
            store.put_record(SUMMARY, key, _summary_record(report))
            exported = export_tables(store, evaluation, out) if export else ()
        paths = write_report(out, report, evaluation, victim.data.classes)
    return EvaluateOutcome(
        evaluation=evaluation, report=report, paths=paths, store=store_path, exported=exported
    )


def resume_evaluation(
    out: str | Path,
    given: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 256,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
    export: bool = False,
) -> EvaluateOutcome:
    """Finish (or re-report) the evaluation in ``out`` with the options saved in its store.

    ``given`` holds options of :func:`evaluate_model` stated again (the command line's
    explicit ones): each must equal the saved value, else the resume is refused with both,
    since it would be another evaluation. ``batch_size``, ``device`` and ``export`` are free:
    they do not change the results.
    """
    out = Path(out)
    path = out / STORE_NAME
    if not path.is_file():
        raise InputError(
            f"there is nothing to resume in {out}: it has no {STORE_NAME}; start the evaluation "
            "with --out instead of --resume"
        )
    with ResultStore(path, create=False) as store:
        saved = store.record(*EVALUATION)
    if saved is None:
        raise InputError(f"{path} holds no saved evaluation to resume; run it with --out")
    options = {k: v for k, v in saved.items() if k != "run"}
    for name, value in (given or {}).items():
        if name in RESUME_FREE or name == "out":
            continue
        if name not in options:
            raise InputError(f"--resume takes no {name} option")
        if _normal(name, value) != _normal(name, options[name]):
            flag = "--" + {"eps_list": "eps", "attacks": "attack"}.get(name, name).replace("_", "-")
            raise InputError(
                f"{flag} {_shown(name, value)} contradicts the evaluation saved in {path} "
                f"({flag} {_shown(name, options[name])}); drop it to resume, or evaluate into "
                "a new --out"
            )
    if options.get("suite"):
        options["attacks"] = None
    threat = options.pop("threat")
    capability = Capability[str(options.pop("capability")).upper()]
    log(f"resuming the evaluation saved in {path}")
    return evaluate_model(
        **options,
        out=out,
        capability=capability,
        threat=None if threat is None else ThreatModel(**threat),
        batch_size=batch_size,
        device=device,
        progress=progress,
        log=log,
        export=export,
    )


def _normal(name: str, value: Any) -> Any:
    """An option's value in the form it is saved, for comparison."""
    if name == "eps_list":
        return sorted({float(e) for e in value})
    if name == "attacks":
        return [parse_attack(a).as_json() for a in value]
    if name == "capability":
        return value.name.lower() if isinstance(value, Capability) else str(value).lower()
    if name in ("model", "data_dir", "generator") and value is not None:
        return str(value)
    if name == "params":
        return {k: v for k, v in dict(value or {}).items() if v is not None}
    return value


def _shown(name: str, value: Any) -> str:
    value = _normal(name, value)
    if name == "attacks":
        return ",".join(a["label"] for a in value)
    if name == "eps_list":
        return ",".join(f"{e:g}" for e in value)
    return "(not given)" if value is None else str(value)


def _bound(
    generator: str | Path,
    victim: Target,
    evaluation: Evaluation,
    threat: ThreatModel,
    seed: int,
) -> dict[str, Any]:
    """The bound on robust accuracy at each budget on ``generator``'s data
    (:func:`~brittle.bounds.accuracy.robust_accuracy_bound`), with the checkpoint's path."""
    gen, meta = load_generator(generator, victim.classifier.device)
    found = robust_accuracy_bound(victim.classifier, gen, evaluation.eps, threat.norm, seed=seed)
    return {"generator": {"path": str(generator), **_generator_info(meta)}, **found}


def _generator_info(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a report says of a generator checkpoint: its kind and what it was trained on."""
    keys = ("arch", "latent_dim", "dataset", "epochs", "sha256")
    return {k: meta[k] for k in keys if k in meta}


def _suite_items(
    suite: str,
    attacks: Sequence[Any] | None,
    params: Mapping[str, Any] | None,
    threat: ThreatModel | None,
    capability: Capability,
    targeted: bool,
    target: str | None,
    minimize: bool,
    input_shape: Sequence[int] | None = None,
) -> list[AttackItem]:
    """The attacks of ``suite`` (:func:`~brittle.eval.suite.suite_attacks`) for the threat
    the options state and inputs of ``input_shape``; refused with a list of attacks, a
    targeted goal or ``minimize``."""
    if attacks:
        raise InputError("give either --suite or --attack, not both: a suite is its own attacks")
    if (
        targeted
        or target is not None
        or minimize
        or (threat is not None and threat.goal is not Goal.UNTARGETED)
    ):
        raise InputError(
            f"the {suite} suite is untargeted and of fixed budgets; drop --targeted, --target "
            "and --minimize, or list the attacks with --attack"
        )
    norm = (params or {}).get("norm") or (threat.norm.value if threat else "linf")
    granted = threat.capability if threat else capability
    items = []
    for member in suite_attacks(suite, norm, granted, input_shape):
        item = parse_attack(member.label)
        params_in_norm = {**item.params, "norm": norm}
        items.append(replace(item, params=params_in_norm, survivors_only=member.survivors_only))
    return items


def _threat_json(threat: ThreatModel) -> dict[str, Any]:
    return {
        "goal": threat.goal.value,
        "capability": threat.capability.name,
        "norm": threat.norm.value,
        "eps": threat.eps,
        "bounds": list(threat.bounds),
        "in_distribution": threat.in_distribution,
    }


def run_identity(
    victim: Target,
    threat: ThreatModel,
    split: str,
    data_dir: str | Path | None,
    seed: int,
) -> dict[str, Any]:
    """What a run is: the checkpoint's SHA-256, the data (name, split, size and the whole
    split's content hash, so that runs on subsets of one split share sample ids), the
    threat model without its budget, and the seed."""
    full = load_dataset(victim.data.name, split, data_dir)
    digest = hashlib.sha256(full.x.numpy().tobytes() + full.y.numpy().tobytes())
    digest.update(full.ids.numpy().tobytes())
    return {
        "model_sha256": victim.meta["sha256"],
        "data": {
            "name": victim.data.name,
            "split": split,
            "size": len(full),
            "sha256": digest.hexdigest(),
        },
        "threat": {
            "goal": threat.goal.value,
            "capability": threat.capability.name,
            "norm": threat.norm.value,
            "bounds": list(threat.bounds),
            "in_distribution": threat.in_distribution,
        },
        "seed": seed,
    }


def _adversaries(
    items: Sequence[AttackItem],
    victim: Target,
    eps: float,
    shared: Mapping[str, Any],
    minimize: bool,
    targeted: bool,
    target: str | None,
    capability: Capability,
    threat: ThreatModel | None,
    seed: int,
) -> list[tuple[Adversary, Attack]]:
    """Each attack's adversary and its attack at ``eps``, checked against one threat.

    ``shared`` parameters go to every attack that declares them (with one attack, to it,
    for it to refuse those it does not take); each attack's own parameters override them.
    """
    stated = {k: v for k, v in shared.items() if v is not None}
    if len(items) > 1:
        takes = {
            item.label: set(accepted_parameters(attack_class(item.name)))
            | ({p.name for p in minimize_parameters()} if minimize else set())
            for item in items
        }
        unused = sorted(k for k in stated if not any(k in names for names in takes.values()))
        if unused:
            raise InputError(
                f"no attack of {', '.join(takes)} takes {', '.join(unused)}; drop it, or give "
                "it to one attack as NAME:PARAM=VALUE"
            )
    built = []
    for item in items:
        mine = (
            stated
            if len(items) == 1
            else {
                k: v
                for k, v in stated.items()
                if k in accepted_parameters(attack_class(item.name))
                or (minimize and k in {p.name for p in minimize_parameters()})
            }
        )
        built.append(
            prepare(
                item.name,
                victim,
                eps=eps,
                params={**mine, **item.params},
                minimize=minimize,
                targeted=targeted,
                target=target,
                capability=capability,
                threat=threat,
                seed=seed,
            )
        )
    first = built[0][0].threat
    for item, (adversary, _) in zip(items, built, strict=True):
        other = adversary.threat
        if (other.goal, other.norm, other.capability) != (first.goal, first.norm, first.capability):
            raise InputError(
                f"the attacks of one evaluation must state one threat model: {items[0].label} "
                f"is {first.describe()}, {item.label} is {other.describe()}; evaluate them into "
                "separate --out folders"
            )
    return built


def _check_same_run(store: ResultStore, key: str, identity: dict[str, Any], out: Path) -> None:
    """Refuse a store that holds the evaluation of another run (another model, data, threat
    or seed): one folder, one run, so that no report mixes or replaces another's."""
    saved = store.record(*EVALUATION)
    if saved is None or saved.get("run") == key:
        return
    other = store.record("run", str(saved.get("run"))) or {}
    differs = [name for name in identity if identity[name] != other.get(name)]
    words = {"model_sha256": "the model file", "data": "the data", "threat": "the threat model"}
    what = ", ".join(words.get(name, name) for name in differs) or "the run"
    raise InputError(
        f"{out} holds the evaluation of another run (not the same: {what}); evaluate into a new "
        f"--out folder, resume that one with --resume {out}, or move {out} aside"
    )


def _log_resume(
    store: ResultStore,
    key: str,
    plans: Sequence[AttackPlan],
    eps_list: Sequence[float],
    victim: Target,
    log: Log,
) -> None:
    """Say how much of the run ``key`` the store already holds, if anything."""
    ids = {int(i) for i in victim.data.ids.tolist()}
    found = sum(
        len(store.done(key, plan.key, float(e)) & ids) for plan in plans for e in set(eps_list)
    )
    if found:
        total = len(set(eps_list)) * len(plans) * len(ids)
        log(
            f"resuming run {key}: {found} of {total} (attack, eps, sample) results are already "
            f"in {store.path}; attacking only the remaining {total - found}"
        )


def _summary_record(report: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a report: the threat, the attacks and the per-budget rows."""
    keys = ("created", "threat_model", "attacks", "results", "per_attack", "timing", "warnings")
    from brittle.report.content import finite

    return dict(finite({k: report[k] for k in keys if k in report}))
