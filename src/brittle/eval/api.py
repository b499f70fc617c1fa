"""``brittle.evaluate``: one call from Python, for any model and any data, writing what the
command line writes (``results.sqlite``, ``report.json``, ``report.html``) and resuming.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from brittle.attacks.base import Attack
from brittle.errors import InputError
from brittle.eval.pipeline import EvaluateOutcome, Log, quiet, run_evaluation
from brittle.eval.spec import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_N,
    AttackSpec,
    DataRef,
    EvaluationSpec,
    ModelRef,
    attack_specs,
    check_target,
)
from brittle.eval.suite import STANDARD
from brittle.eval.victim import Victim, as_source, draw_ids, live_model
from brittle.model import Model
from brittle.threat import Capability, ThreatModel
from brittle.validation import check_positive_integer

AttackLike = str | AttackSpec | Attack


def evaluate(
    model: nn.Module | Model | str | Path,
    data: Any,
    *,
    out: str | Path,
    attacks: AttackLike | Sequence[AttackLike] | None = None,
    eps: str | float | Sequence[str | float] | None = None,
    suite: str | None = None,
    norm: str | None = None,
    n: int | None = None,
    split: str = "test",
    data_dir: str | Path | None = None,
    weights: str | Path | None = None,
    preprocess: tuple[Sequence[float], Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    threat: ThreatModel | None = None,
    capability: Capability | None = None,
    targeted: bool = False,
    target: str | None = None,
    minimize: bool = False,
    generator: str | Path | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    amp: str | None = None,
    progress: bool = True,
    log: Log = quiet,
    export: bool = False,
    certify: bool | str | None = None,
) -> EvaluateOutcome | None:
    """Evaluate ``model`` on ``data`` under each attack at each budget; write the store and
    the report into ``out``. Calling it again with the same arguments resumes.

    ``model``: an ``nn.Module`` returning logits (wrapped with ``bounds`` and ``preprocess``,
    per-channel ``(mean, std)`` applied inside), a :class:`~brittle.Classifier`, an
    :class:`~brittle.Oracle`, or a file any ``--model`` takes (with ``weights`` for a
    ``file.py:factory``). ``data``: a pair ``(x, y)``, a ``torch.utils.data.Dataset`` or a
    DataLoader over one (streamed in batches: the whole set is never held in memory unless
    it is given so), a :class:`~brittle.data.source.Source`, or a data set name with
    ``data_dir`` (``"npz"``, ``"folder"``, ``"cifar10"``...). Sample ids are the data's
    indices. ``n``: how many samples to draw with ``seed`` (default: all of data given in
    memory; for a named data set, 1,000 or all when fewer, as the command line).

    ``attacks``: names with parameters (``"pgd:steps=40"``), :class:`AttackSpec`, or attack
    instances (default FGSM); ``suite="standard"`` instead runs AutoAttack's plan in
    ``norm``, or the strongest attacks a weaker ``capability`` allows
    (:func:`~brittle.eval.suite.suite_attacks`), which is also what a ``capability`` given
    without ``attacks`` runs. ``capability``: what the adversary may use (default: the white
    box). ``eps``: the budgets, numbers or texts such as ``"8/255"`` (kept as written in
    the report). ``threat``: the threat model, else stated from the attacks, ``capability``
    and ``bounds``. ``classes``: the class names (checked against the data's). ``amp``:
    ``"bf16"`` or ``"fp16"`` for the crafting forward passes of an ``nn.Module`` or a file
    (success is re-checked at full precision; a Classifier given states its own ``amp``).

    ``certify``: ``True`` (or ``"auto"``), ``"ibp"`` or ``"smoothing"`` also certifies every
    sample and puts the certified radii below the smallest perturbations found in the report
    (``report["sandwich"]``, with a sanity check that no certified radius lies above).

    Under a ``torch.distributed`` process group (``torchrun``), call it on every rank with the
    same arguments: the ranks share the samples, rank 0 writes the store and the report and
    returns the outcome, the others return ``None``.
    """
    if n is not None:
        check_positive_integer(n, "n")
    if amp is not None and isinstance(model, Model):
        raise InputError(
            "amp is for a plain nn.Module or a file; a Classifier states its own "
            "(Classifier(module, amp=...)) and an oracle runs at its own precision"
        )
    if suite is None and attacks is None and capability is not None:
        suite = STANDARD  # the threat stated, no attack: the strongest the threat allows
    chosen = [] if suite is not None else _listed(attacks)
    specs = attack_specs(
        chosen, minimize=minimize, target=check_target(target, targeted), seed=seed
    )
    path_model = isinstance(model, str | Path)
    named_data = isinstance(data, str)
    spec = EvaluationSpec(
        model=ModelRef(
            spec=str(model) if path_model else f"<python {type(model).__name__}>",
            weights=None if weights is None else str(weights),
            preprocess=None if preprocess is None else (tuple(preprocess[0]), tuple(preprocess[1])),
            classes=None if classes is None else tuple(str(c) for c in classes),
            amp=amp if amp is not None else getattr(model, "amp", None),
        ),
        data=DataRef(
            dataset=data if named_data else None,
            data_dir=None if data_dir is None else str(data_dir),
            split=split,
            n=n,
        ),
        attacks=specs,
        eps=() if eps is None else ((eps,) if isinstance(eps, int | float) else eps),  # type: ignore[arg-type]
        capability=Capability.WHITE_BOX if capability is None else capability,
        threat=threat,
        suite=suite,
        norm=norm,
        generator=None if generator is None else str(generator),
        seed=seed,
        batch_size=batch_size,
    )
    opened = None
    if not (path_model and named_data):
        opened = _victim(model, data, spec, bounds=bounds, device=device)
    return run_evaluation(
        spec,
        out,
        victim=opened,
        device=device,
        progress=progress,
        log=log,
        export=export,
        certify="auto" if certify is True else (certify or None),
    )


def _listed(attacks: AttackLike | Sequence[AttackLike] | None) -> list[AttackLike]:
    if attacks is None:
        return ["fgsm"]
    if isinstance(attacks, str | AttackSpec | Attack):
        return [attacks]
    return list(attacks)


def _victim(
    model: Any,
    data: Any,
    spec: EvaluationSpec,
    *,
    bounds: tuple[float, float],
    device: str | None,
) -> Victim:
    """The victim of a model or data given as Python objects."""
    from brittle.eval.victim import check_belong, open_model

    source = as_source(
        data,
        split=spec.data.split,
        data_dir=spec.data.data_dir,
        classes=None if spec.model.classes is None else list(spec.model.classes),
    )
    if isinstance(model, str | Path):
        opened, meta = open_model(spec.model, source.input_shape, device)
    else:
        opened, meta = live_model(
            model,
            preprocess=spec.model.preprocess,
            classes=spec.model.classes,
            bounds=bounds,
            input_shape=source.input_shape,
            device=device,
            amp=None if isinstance(model, Model) else spec.model.amp,
        )
    check_belong(opened, meta, source)
    named = isinstance(data, str)
    what = f"the {source.split} split of {source.name}" if named else source.name
    ids = draw_ids(len(source), spec.data.n, spec.seed, what, DEFAULT_N if named else None)
    return Victim(model=opened, meta=meta, source=source, ids=ids, seed=spec.seed)
