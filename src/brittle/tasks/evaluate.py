"""``brittle evaluate``: the command's options as an :class:`~brittle.eval.spec.EvaluationSpec`,
run by :func:`~brittle.eval.pipeline.run_evaluation`; ``--resume`` runs the spec a store keeps.

The options are kept beside the spec in the store, so that a resume can refuse an option
stated again with another value (it would be another evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from brittle.budget import parse_budgets
from brittle.data import Limits
from brittle.errors import InputError
from brittle.eval.pipeline import (
    OPTIONS,
    STORE_NAME,
    EvaluateOutcome,
    Log,
    quiet,
    run_evaluation,
    saved_spec,
)
from brittle.eval.spec import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPS,
    AttackSpec,
    DataRef,
    EvaluationSpec,
    attack_specs,
    check_target,
    threat_json,
)
from brittle.eval.store import ResultStore
from brittle.threat import Capability, ThreatModel

from .common import ModelOptions, model_ref

DEFAULT_EPS_LIST = DEFAULT_EPS
RESUME_FREE = frozenset({"batch_size", "device", "progress", "log", "export", "limits"})
"""Options ``--resume`` may change: they do not change the results."""

__all__ = [
    "DEFAULT_EPS_LIST",
    "STORE_NAME",
    "EvaluateOutcome",
    "evaluate_model",
    "evaluation_spec",
    "resume_evaluation",
]


def evaluation_spec(
    *,
    model: str | Path,
    eps_list: Sequence[Any] | str | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    attack: str = "fgsm",
    attacks: Sequence[str | AttackSpec | Mapping[str, Any]] | None = None,
    suite: str | None = None,
    generator: str | Path | None = None,
    n: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    params: Mapping[str, Any] | None = None,
    capability: Capability = Capability.WHITE_BOX,
    threat: ThreatModel | None = None,
    seed: int = 0,
    model_options: ModelOptions | None = None,
    limits: Limits | None = None,
) -> EvaluationSpec:
    """The spec of the evaluation the command's options describe.

    ``attacks``: texts ``NAME[:PARAM=VALUE...]`` (:meth:`AttackSpec.parse`); ``params`` go
    to every listed attack that declares them (one that none declares is refused).
    ``suite`` replaces the attacks (its only parameter is ``norm``); it is untargeted and of
    fixed budgets.
    """
    stated = {k: v for k, v in (params or {}).items() if v is not None}
    if suite is not None:
        if attacks:
            raise InputError(
                "give either --suite or --attack, not both: a suite is its own attacks"
            )
        if targeted or target is not None or minimize:
            raise InputError(
                f"the {suite} suite is untargeted and of fixed budgets; drop --targeted, "
                "--target and --minimize, or list the attacks with --attack"
            )
        other = sorted(set(stated) - {"norm"})
        if other:
            raise InputError(
                f"the {suite} suite sets its attacks' parameters itself; drop "
                f"{', '.join(other)} (only --norm applies)"
            )
        listed: tuple[AttackSpec, ...] = ()
    else:
        listed = attack_specs(
            list(attacks) if attacks else [attack],
            shared=stated,
            minimize=minimize,
            target=check_target(target, targeted),
            seed=seed,
        )
    return EvaluationSpec(
        model=model_ref(model, model_options),
        data=DataRef(dataset, None if data_dir is None else str(data_dir), split, n, limits),
        attacks=listed,
        eps=parse_budgets(eps_list) if eps_list is not None else (),
        capability=capability,
        threat=threat,
        suite=suite,
        norm=stated.get("norm") if suite is not None else None,
        generator=None if generator is None else str(generator),
        seed=seed,
        batch_size=batch_size,
    )


def evaluate_model(
    *,
    out: str | Path,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
    export: bool = False,
    certify: str | None = None,
    **options: Any,
) -> EvaluateOutcome | None:
    """Evaluate what ``options`` describe (:func:`evaluation_spec`) into ``out``
    (:func:`~brittle.eval.pipeline.run_evaluation`); the options are kept in the store for
    :func:`resume_evaluation` to check."""
    spec = evaluation_spec(**options)
    kept = {k: _normal(k, v) for k, v in options.items()}
    return run_evaluation(
        spec,
        out,
        device=device,
        progress=progress,
        log=log,
        export=export,
        options=kept,
        certify=certify,
    )


def resume_evaluation(
    out: str | Path,
    given: Mapping[str, Any] | None = None,
    *,
    batch_size: int | None = None,
    limits: Limits | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
    export: bool = False,
    certify: str | None = None,
) -> EvaluateOutcome | None:
    """Finish (or re-report) the evaluation in ``out`` with the spec saved in its store.

    ``given`` holds options of :func:`evaluation_spec` stated again (the command line's
    explicit ones): each must equal the saved one, else the resume is refused with both,
    since it would be another evaluation. ``batch_size``, ``limits``, ``device`` and
    ``export`` are free: they replace the saved ones.
    """
    spec = saved_spec(out)
    _check_given(Path(out) / STORE_NAME, given or {})
    if batch_size is not None:
        spec = replace(spec, batch_size=batch_size)
    if limits is not None:
        spec = replace(spec, data=replace(spec.data, limits=limits))
    log(f"resuming the evaluation saved in {Path(out) / STORE_NAME}")
    return run_evaluation(
        spec, out, device=device, progress=progress, log=log, export=export, certify=certify
    )


def _check_given(store_path: Path, given: Mapping[str, Any]) -> None:
    stated = {k: v for k, v in given.items() if k not in RESUME_FREE and k != "out"}
    if not stated:
        return
    with ResultStore(store_path, create=False, read_only=True) as store:
        saved = store.record(*OPTIONS)
    if saved is None:
        raise InputError(
            f"the evaluation in {store_path.parent} was not started by `brittle evaluate`; "
            "resume it with --resume alone"
        )
    for name, value in stated.items():
        mine = _normal(name, value)
        theirs = saved.get(name, _normal(name, None))
        if mine != theirs:
            flag = "--" + {"eps_list": "eps", "attacks": "attack"}.get(name, name).replace("_", "-")
            raise InputError(
                f"{flag} {_shown(mine)} contradicts the evaluation saved in {store_path} "
                f"({flag} {_shown(theirs)}); drop it to resume, or evaluate into a new --out"
            )


def _normal(name: str, value: Any) -> Any:
    """An option's value in the form it is kept, for comparison."""
    if value is None:
        return None
    if name == "eps_list":
        return [float(b) for b in parse_budgets(value)]
    if name == "attacks":
        return [AttackSpec.of(a).label for a in value]
    if name == "capability":
        return value.name.lower() if isinstance(value, Capability) else str(value).lower()
    if name == "threat":
        return threat_json(value) if isinstance(value, ThreatModel) else value
    if name == "params":
        return {k: v for k, v in dict(value).items() if v is not None}
    if name == "limits":
        return asdict(value)
    if name == "model_options":
        return {
            "weights": None if value.weights is None else str(value.weights),
            "preprocess": None if value.preprocess is None else [list(p) for p in value.preprocess],
            "classes": None if value.classes is None else list(value.classes),
            "amp": value.amp,
        }
    if isinstance(value, Path):
        return str(value)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "(not given)" if value is None else str(value)
