"""The contract every attack keeps, checked on a tiny model: ``check_attack(MyAttack, eps=0.3)``.

:func:`check_attack` builds the attack, then a tiny classifier of its own (an MLP with
batchnorm and dropout on 1x4x4 inputs in [0, 1], four classes, float64) and the same model as
an :class:`~brittle.Oracle` with scores and with labels, and checks, raising an
``AssertionError`` that names the broken property:

- **budget and box**: every returned input lies in the box and within ``eps`` of its original
  in the attack's norm; a minimal attack returns a sample it did not fool unchanged;
- **verdict**: ``success`` and ``pred_adv`` are the model's own answer on the returned inputs
  (untargeted: the prediction differs from the label; targeted: it is the target);
- **counted queries** and **counted gradients**: the rows the model saw, and the input
  gradients it gave, are exactly the result's ``queries + verification_queries`` and
  ``gradients`` (a forward hook counts them; the model's one-off input checks run first);
- **capability**: an attack that needs more than an oracle grants is refused with a
  :class:`~brittle.errors.ThreatModelError` before any query; one that needs no more runs on
  it and keeps the contract there too;
- **module state**: the parameters, the buffers (batchnorm's running statistics), every
  module's training flag and every parameter's ``requires_grad`` and ``grad`` are as before;
- **per-sample randomness**: the same sample ids give the same result in one batch of 64, in
  batches of 7 (the last of 1), and alone;
- **batch of 0**: an empty batch gives an empty result without a query.

Pass a ``classifier`` and ``samples=(x, y)`` to check the same properties (but capability) on
a model of your own as well.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from brittle.attacks.base import Attack, MinimizationAttack
from brittle.attacks.result import AttackResult
from brittle.classifier import Classifier
from brittle.errors import ThreatModelError
from brittle.model import Model
from brittle.oracle import Oracle
from brittle.perturbation import within_budget
from brittle.threat import Goal

SHAPE = (1, 4, 4)
"""The tiny model's input shape (square images, so that image attacks such as Square run)."""
CLASSES = 4
"""The tiny model's classes (APGD-T's targeted DLR loss needs four)."""
SAMPLES = 64
"""Samples the contract is checked on; two of them start misclassified."""
SINGLES = 8
"""Samples also attacked alone, for per-sample randomness at batch size 1."""
TOLERANCE = 1e-6
"""How far the same sample's result may move between batch sizes (batched matrix products
may round differently)."""


def check_attack(
    attack_cls: type[Attack],
    *,
    classifier: Classifier | None = None,
    samples: tuple[Tensor, Tensor] | None = None,
    **kwargs: Any,
) -> None:
    """Check that ``attack_cls(**kwargs)`` keeps the contract of every attack (see the module
    docstring); an ``AssertionError`` names the first property it breaks.

    ``kwargs`` are the attack's constructor arguments: give few steps or queries where its
    defaults are expensive, and ``eps`` to a fixed-budget attack (the tiny model's inputs lie
    in [0, 1]). With ``classifier`` and ``samples=(x, y)`` the contract is also checked on
    that model (the capability checks need an oracle of the tiny model only).
    """
    attack = attack_cls(**kwargs)
    model, x, y = tiny_problem()
    ids = 1000 + 3 * torch.arange(len(x))
    _check_model(attack, model, x, y, ids)
    _check_capability(attack, model, x[:SINGLES], y[:SINGLES], ids[:SINGLES])
    if classifier is not None:
        if samples is None:
            raise ValueError("give samples=(x, y) to check the attack on your classifier")
        x_own, y_own = samples
        _check_model(attack, classifier, x_own, y_own, torch.arange(len(x_own)))


def tiny_problem() -> tuple[Classifier, Tensor, Tensor]:
    """The tiny classifier and its samples, the same at every call (the global random state is
    left as it was).

    The module is left in training mode with one parameter frozen, and its batchnorm has
    running statistics of its own, so that an attack that does not give the state back is
    seen. The labels are the model's predictions but for the first two samples, which start
    misclassified.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(SHAPE[0] * SHAPE[1] * SHAPE[2], 12),
            nn.BatchNorm1d(12, momentum=None),  # running statistics: the mean over passes
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(12, CLASSES),
        ).double()
        with torch.no_grad():
            for _ in range(3):  # statistics of the data, not the initial (0, 1)
                net(torch.rand(32, *SHAPE, dtype=torch.float64))
        x = torch.rand(SAMPLES, *SHAPE, dtype=torch.float64)
    net[1].bias.requires_grad_(False)
    clf = Classifier(net, bounds=(0.0, 1.0))
    y = clf.predict(x)
    y[:2] = (y[:2] + 1) % CLASSES
    return clf, x, y


# ------------------------------------------------------------------ the properties
def _check_model(attack: Attack, model: Model, x: Tensor, y: Tensor, ids: Tensor) -> None:
    """Every property but capability, on ``model``."""
    goal = _goal(attack)
    _warm(attack, model, x)
    before = _state(model)
    with _counting(model) as counts:
        whole = _run(attack, "verdict", model, x, y, ids, goal)
    _check_state(attack, before, _state(model))
    _check_counts(attack, counts, whole)
    _check_result(attack, model, x, y, whole)
    _check_batches(attack, model, x, y, ids, goal, whole)
    with _counting(model) as counts:
        empty = _run(attack, "batch of 0", model, x[:0], y[:0], ids[:0], goal)
    if len(empty) or empty.x_adv.shape != x[:0].shape or counts.rows:
        _fail(
            attack,
            "batch of 0",
            f"an empty batch gave {len(empty)} results of shape {tuple(empty.x_adv.shape)} "
            f"after {counts.rows} model rows",
        )


def _check_capability(attack: Attack, model: Classifier, x: Tensor, y: Tensor, ids: Tensor) -> None:
    """Refused on an oracle that grants less than the attack needs; kept on the others."""
    module = model.module
    for outputs in ("scores", "labels"):
        oracle = Oracle(
            _oracle_predict(module, outputs),
            num_classes=CLASSES,
            input_shape=SHAPE,
            bounds=model.bounds,
            outputs=outputs,
            dtype=torch.float64,
        )
        if attack.capability <= oracle.capability:
            _check_model(attack, oracle, x, y, ids)
            continue
        with _counting(oracle) as counts:
            try:
                attack(oracle, x, y, ids=ids, **_goal(attack))
            except ThreatModelError:
                refused = True
            else:
                refused = False
        if not refused or counts.rows:
            _fail(
                attack,
                "capability",
                f"it needs {attack.capability.name} but "
                + ("ran" if not refused else f"queried {counts.rows} rows before it was refused")
                + f" on an Oracle with {outputs} ({oracle.capability.name})",
            )


def _check_result(attack: Attack, model: Model, x: Tensor, y: Tensor, result: AttackResult) -> None:
    """Budget and box, and the verdict: the model's own answer on the returned inputs."""
    x_adv = result.x_adv
    if x_adv.shape != x.shape or x_adv.dtype != x.dtype:
        _fail(
            attack,
            "budget and box",
            f"returned {tuple(x_adv.shape)} {x_adv.dtype} for {tuple(x.shape)} {x.dtype}",
        )
    outside = int((model.clip(x_adv) != x_adv).flatten(1).any(1).sum())
    if outside:
        _fail(
            attack,
            "budget and box",
            f"{outside} of {len(x)} returned inputs lie outside the box {model.envelope()}",
        )
    if attack.eps is not None:
        over = int((~within_budget(x_adv - x, attack.norm, attack.eps)).sum())
        if over:
            _fail(
                attack,
                "budget and box",
                f"{over} of {len(x)} returned inputs lie outside the {attack.norm.value} ball "
                f"of radius {attack.eps:g} around their originals",
            )
    pred = model.predict_scores(x_adv).argmax(1)
    met = pred == result.target if result.target is not None else pred != y
    if not torch.equal(pred, result.pred_adv) or not torch.equal(met, result.success):
        wrong = int(((pred != result.pred_adv) | (met != result.success)).sum())
        _fail(
            attack,
            "verdict",
            f"success or pred_adv of {wrong} of {len(x)} samples is not the model's answer on "
            "the returned inputs",
        )
    if isinstance(attack, MinimizationAttack):
        moved = int(((x_adv != x).flatten(1).any(1) & ~result.success).sum())
        if moved:
            _fail(
                attack,
                "budget and box",
                f"a minimal attack returned {moved} samples it did not fool changed (they must "
                "come back unchanged)",
            )


def _check_counts(attack: Attack, counts: _Counts, result: AttackResult) -> None:
    queries = int((result.queries + result.verification_queries).sum())
    if counts.rows != queries:
        _fail(
            attack,
            "counted queries",
            f"the model saw {counts.rows} rows but the result counts {queries} queries "
            "(queries + verification_queries): reach the model only through run.access",
        )
    gradients = int(result.gradients.sum())
    if counts.gradient_rows != gradients:
        _fail(
            attack,
            "counted gradients",
            f"the model gave {counts.gradient_rows} input gradients but the result counts "
            f"{gradients}: reach the model only through run.access",
        )


def _check_state(attack: Attack, before: dict[str, Any], after: dict[str, Any]) -> None:
    for what, old in before.items():
        new = after[what]
        same = len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
        if not same:
            _fail(attack, "module state", f"the model's {what} changed")


def _check_batches(
    attack: Attack,
    model: Model,
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    goal: dict[str, Any],
    whole: AttackResult,
) -> None:
    """The same ids give the same results in batches of 7 (the last of 1) and alone."""
    sevens = [
        _run(
            attack, "per-sample randomness", model, x[i : i + 7], y[i : i + 7], ids[i : i + 7], goal
        )
        for i in range(0, len(x), 7)
    ]
    singles = [
        _run(
            attack, "per-sample randomness", model, x[i : i + 1], y[i : i + 1], ids[i : i + 1], goal
        )
        for i in range(min(SINGLES, len(x)))
    ]
    for size, parts in ((7, sevens), (1, singles)):
        split = AttackResult.concat(parts)
        rows = slice(0, len(split))
        differs = [
            name
            for name in ("success", "queries", "gradients", "target")
            if not _same(getattr(split, name), _rows(getattr(whole, name), rows))
        ]
        if not torch.allclose(split.x_adv, whole.x_adv[rows], rtol=0, atol=TOLERANCE):
            differs.insert(0, "x_adv")
        if differs:
            _fail(
                attack,
                "per-sample randomness",
                f"the same sample ids give other {', '.join(differs)} in batches of {size} "
                f"than in one batch of {len(x)}: draw random numbers with run.random (seeded "
                "per sample id), and decide per sample",
            )


# ------------------------------------------------------------------ the pieces
def _goal(attack: Attack) -> dict[str, Any]:
    """The call's goal: random targets for a targeted attack (or one that is only targeted)."""
    if attack.targeted or Goal.UNTARGETED not in attack.goals:
        return {"target": "random"}
    return {}


def _run(
    attack: Attack,
    prop: str,
    model: Model,
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    goal: dict[str, Any],
) -> AttackResult:
    """One call of the attack; an exception fails ``prop`` (a threat-model error, on a model
    that grants what the attack declares, fails capability: it asked for more)."""
    try:
        return attack(model, x, y, ids=ids, **goal)
    except ThreatModelError as err:
        _fail(attack, "capability", f"it raised ThreatModelError: {err}", err)
    except Exception as err:
        _fail(attack, prop, f"it raised {type(err).__name__}: {err}", err)


def _warm(attack: Attack, model: Model, x: Tensor) -> None:
    """Run the model's one-off input checks now, so that the counted runs see none of them."""
    if len(x):
        model.check_outputs(x)
        if attack.needs_gradients and isinstance(model, Classifier):
            model.check_gradients(x)


@dataclass
class _Counts:
    """Rows a model evaluated, and rows whose input gradient it gave."""

    rows: int = 0
    gradient_rows: int = 0


@contextmanager
def _counting(model: Model) -> Iterator[_Counts]:
    """Count the rows ``model`` evaluates and the input gradients it gives while inside."""
    counts = _Counts()
    if isinstance(model, Oracle):
        predict = model.predict

        def counted(x: Tensor) -> Any:
            counts.rows += len(x)
            return predict(x)

        model.predict = counted
        try:
            yield counts
        finally:
            model.predict = predict
        return
    assert isinstance(model, Classifier)

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        counts.rows += len(x)
        if x.requires_grad:
            rows = len(x)

            def gradient(grad: Tensor) -> None:
                counts.gradient_rows += rows

            x.register_hook(gradient)

    handle = model.module.register_forward_pre_hook(hook)
    try:
        yield counts
    finally:
        handle.remove()


def _state(model: Model) -> dict[str, Any]:
    """What an attack must leave as it found it: the module's state (nothing for an oracle)."""
    if not isinstance(model, Classifier):
        return {}
    module = model.module
    params = list(module.parameters())
    return {
        "parameters and buffers": [t.detach().clone() for t in module.state_dict().values()],
        "training flags": [m.training for m in module.modules()],
        "requires_grad flags": [p.requires_grad for p in params],
        "parameter gradients": [None if p.grad is None else p.grad.clone() for p in params],
    }


def _oracle_predict(module: nn.Module, outputs: str) -> Callable[[Tensor], Tensor]:
    """A deterministic oracle of ``module``: its eval-mode logits, or their argmax."""
    frozen = copy.deepcopy(module).eval()

    def predict(x: Tensor) -> Tensor:
        with torch.no_grad():
            scores: Tensor = frozen(x)
        return scores if outputs == "scores" else scores.argmax(1)

    return predict


def _rows(value: Any, rows: slice) -> Any:
    return value[rows] if isinstance(value, Tensor) else value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return bool(a == b)


def _fail(attack: Attack, prop: str, detail: str, cause: BaseException | None = None) -> NoReturn:
    raise AssertionError(f"{attack.name} breaks the attack contract ({prop}): {detail}") from cause
