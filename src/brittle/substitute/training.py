"""Training a substitute of a model seen only through its labels (Papernot et al. 2017,
"Practical Black-Box Attacks against Machine Learning", Algorithm 1).

Round 0 trains the substitute F_0 on the seed set S_0 labelled by the oracle O (or by labels
the adversary already holds); each later round grows the set by Jacobian-based augmentation
(:mod:`brittle.substitute.augmentation`), asks the oracle for the labels of the new points
only, and trains on S_rho again (the weights carry over from round to round, as CleverHans'
tutorial does). Every label asked of the oracle goes through
:class:`~brittle.access.ModelAccess` with the ``ORACLE_LABELS`` capability and is counted:
``SubstituteFit.queries`` is exactly the number of inputs the oracle labelled.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from brittle.access import ModelAccess
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.model import Model
from brittle.perturbation import Bounds
from brittle.threat import Capability
from brittle.zoo import build_model, train_model
from brittle.zoo.rng import seeded

from .augmentation import (
    jacobian_augmentation,
    new_point_count,
    reservoir,
    step_size,
    unseen,
)

ModuleFactory = Callable[[], nn.Module]
"""Builds a fresh substitute network (called once, under the fit's seed)."""
LABEL_BATCH = 1024
"""Inputs per call of the oracle when labelling, and per backward pass when augmenting."""


@dataclass(frozen=True)
class HeldOut:
    """Inputs to measure each round's substitute on: their true labels (accuracy) and the
    target's labels (agreement). The evaluator's measurement, not the adversary's queries."""

    x: Tensor
    y: Tensor
    target_labels: Tensor


@dataclass(frozen=True)
class Round:
    """One substitute training round rho.

    ``size``: points in S_rho, the set it trained on; ``added``: points the augmentation
    added to S_{rho-1} (the seed set's size for round 0); ``queries``: labels asked of the
    oracle in this round; ``step``: lambda_{rho-1}, the step that made the added points
    (``None`` for the seed). ``accuracy`` and ``agreement`` on the held-out inputs, if any.
    """

    rho: int
    size: int
    added: int
    queries: int
    step: float | None
    seconds: float
    accuracy: float | None = None
    agreement: float | None = None


@dataclass
class SubstituteFit:
    """A trained substitute, the set it was trained on and what it cost.

    ``module`` is the substitute (eval mode, float32, on the training device); ``x`` and
    ``labels`` are the final training set S_rho and the labels it was trained with;
    ``queries`` counts the inputs the oracle labelled; ``capability`` is what its training
    needed of the target (``SAMPLES`` without a query, else ``ORACLE_LABELS``).
    """

    module: nn.Module
    x: Tensor
    labels: Tensor
    rounds: list[Round]
    queries: int
    capability: Capability
    num_classes: int
    _copies: dict[tuple[torch.dtype, torch.device], nn.Module] = field(
        default_factory=dict, repr=False
    )

    def network(self, dtype: torch.dtype, device: torch.device) -> nn.Module:
        """The substitute in ``dtype`` on ``device`` (a copy, made once; eval mode)."""
        key = (dtype, device)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.module).to(device, dtype).eval()
        return self._copies[key]

    def classifier(self, bounds: Bounds, dtype: torch.dtype, device: torch.device) -> Classifier:
        """The substitute as a white-box :class:`~brittle.classifier.Classifier` to craft on."""
        return Classifier(
            self.network(dtype, device),
            bounds=bounds,
            num_classes=self.num_classes,
            device=device,
        )

    def predict(self, x: Tensor, batch_size: int = LABEL_BATCH) -> Tensor:
        """The substitute's labels for ``x`` (no query of the target)."""
        net = self.network(x.dtype, x.device)
        with torch.no_grad():
            parts = [net(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)

    def agreement(self, x: Tensor, target_labels: Tensor) -> float:
        """The share of ``x`` on which the substitute gives the target's labels."""
        if not len(x):
            raise InputError("agreement needs at least one input")
        return float((self.predict(x) == target_labels.to(x.device)).double().mean())


def attack_state(target: Model) -> contextlib.AbstractContextManager[Model]:
    """The state a model is queried in during an attack (a classifier in its attack mode)."""
    if isinstance(target, Classifier):
        return target.evaluation(target.mode)
    return target.evaluation()


def oracle_labels(target: Model, x: Tensor) -> tuple[Tensor, int]:
    """The target's labels for ``x`` (on the CPU) and the queries they cost, through the
    counted ``ORACLE_LABELS`` access, ``LABEL_BATCH`` inputs per call."""
    labels, queries = [], 0
    for start in range(0, len(x), LABEL_BATCH):
        chunk = x[start : start + LABEL_BATCH].to(target.device, target.dtype)
        access = ModelAccess(target, Capability.ORACLE_LABELS, len(chunk), "substitute")
        labels.append(access.labels(chunk).cpu())
        queries += int(access.queries.sum())
    empty = torch.zeros(0, dtype=torch.long)
    return (torch.cat(labels) if labels else empty), queries


def train_substitute(
    x: Tensor,
    labels: Tensor | None = None,
    *,
    target: Model | None = None,
    module: str | ModuleFactory = "mlp",
    num_classes: int | None = None,
    bounds: Bounds = (0.0, 1.0),
    rounds: int = 6,
    lam: float = 0.1,
    tau: int | None = 3,
    kappa: int | None = None,
    sigma: int = 3,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    held_out: HeldOut | None = None,
    on_round: Callable[[Round, nn.Module], None] | None = None,
) -> SubstituteFit:
    """Train a substitute of ``target`` from the seed inputs ``x`` (Algorithm 1).

    ``labels``: the seed set's labels when the adversary holds them (training data, or
    input/label samples); ``None`` asks the target. ``rounds`` augmentations follow (each
    needs the target's labels of the new points), with step ``lam``, its sign flipped every
    ``tau`` rounds, and after ``sigma`` rounds ``kappa`` new points per round (reservoir
    sampling; ``None``: every point makes one). ``module``: a zoo architecture
    (:data:`brittle.zoo.ARCHITECTURES`) or a factory of fresh ``nn.Module`` s. Training:
    Adam with ``lr``, ``epochs`` per round, mini-batches of ``batch_size``, all seeded by
    ``seed``. ``held_out`` measures each round's accuracy and agreement; ``on_round`` is
    called after each round with its record and the substitute as it then is (eval mode).
    """
    x = _check_seed_set(x)
    if rounds < 0:
        raise InputError(f"rounds must be >= 0, got {rounds}")
    queried = labels is None or rounds > 0
    if queried and target is None:
        raise InputError(
            "the substitute needs the target's labels (of the seed set, or of the augmented "
            "points): pass target=<model>, or labels=<the seed labels> and rounds=0"
        )
    if target is not None:
        if target.num_classes is None:  # a classifier learns its classes from its outputs
            target.check_outputs(x[:2].to(target.device, target.dtype))
        bounds = target.bounds
        num_classes = target.num_classes
    state = attack_state(target) if target is not None else contextlib.nullcontext()
    with state:
        start = time.perf_counter()
        if labels is None:
            assert target is not None
            y, spent = oracle_labels(target, x)
        else:
            y, spent = _check_labels(labels, len(x)), 0
        classes = num_classes if num_classes is not None else int(y.max()) + 1
        net = _build(module, tuple(x.shape[1:]), classes, seed)
        where = _device(net, device)
        _train(net, x, y, epochs, lr, batch_size, seed, where)
        history = [_round(0, len(x), len(x), spent, None, start, net, held_out, where)]
        _report(on_round, history[-1], net)
        total = spent
        for rho in range(rounds):
            assert target is not None
            start = time.perf_counter()
            step = step_size(lam, rho, tau)
            chosen = reservoir(len(x), new_point_count(len(x), rho, kappa, sigma), seed, rho)
            net.eval()
            moved = jacobian_augmentation(
                net, x[chosen].to(where), y[chosen].to(where), step, _on(bounds, where)
            ).cpu()
            fresh = moved[unseen(moved, x)]
            new_labels, spent = oracle_labels(target, fresh)
            x, y = torch.cat([x, fresh]), torch.cat([y, new_labels])
            total += spent
            _train(net, x, y, epochs, lr, batch_size, seed + rho + 1, where)
            history.append(
                _round(rho + 1, len(x), len(fresh), spent, step, start, net, held_out, where)
            )
            _report(on_round, history[-1], net)
    net.eval()
    capability = Capability.ORACLE_LABELS if queried else Capability.SAMPLES
    return SubstituteFit(net, x, y, history, total, capability, classes)


# ------------------------------------------------------------------ the pieces
def _check_seed_set(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2 or not len(x):
        raise InputError(
            "the seed set must be a non-empty float tensor (N, *input_shape), got "
            + (f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__)
        )
    if not bool(torch.isfinite(x).all()):
        raise InputError("the seed set holds NaN or infinite values")
    return x.detach().float().cpu()


def _check_labels(labels: Tensor, n: int) -> Tensor:
    t = torch.as_tensor(labels)
    if t.is_floating_point() or t.shape != (n,) or (n and int(t.min()) < 0):
        raise InputError(
            f"the seed labels must be {n} class indices >= 0, shape ({n},); got {t.dtype} "
            f"{tuple(t.shape)}"
        )
    return t.long().cpu()


def _build(
    module: str | ModuleFactory, shape: tuple[int, ...], classes: int, seed: int
) -> nn.Module:
    if isinstance(module, str):
        return build_model(module, shape, classes, seed=seed)
    if not callable(module):
        raise InputError(
            f"module must be a zoo architecture name or a factory of nn.Module, got "
            f"{type(module).__name__}"
        )
    with seeded(seed):
        net = module()
    if not isinstance(net, nn.Module):
        raise InputError(f"the module factory must return an nn.Module, got {type(net).__name__}")
    return net


def _device(net: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(iter(net.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _on(bounds: Bounds, device: torch.device) -> Bounds:
    low, high = bounds
    return (
        low.to(device) if isinstance(low, Tensor) else low,
        high.to(device) if isinstance(high, Tensor) else high,
    )


def _train(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> None:
    train_model(
        net,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        progress=False,
    )


def _round(
    rho: int,
    size: int,
    added: int,
    queries: int,
    step: float | None,
    start: float,
    net: nn.Module,
    held_out: HeldOut | None,
    device: torch.device,
) -> Round:
    accuracy = agreement = None
    if held_out is not None:
        predicted = torch.cat(list(_predictions(net, held_out.x, device)))
        accuracy = float((predicted == held_out.y.cpu()).double().mean())
        agreement = float((predicted == held_out.target_labels.cpu()).double().mean())
    seconds = time.perf_counter() - start
    return Round(rho, size, added, queries, step, seconds, accuracy, agreement)


def _report(
    on_round: Callable[[Round, nn.Module], None] | None, done: Round, net: nn.Module
) -> None:
    if on_round is not None:
        net.eval()
        on_round(done, net)


def _predictions(net: nn.Module, x: Tensor, device: torch.device) -> Iterator[Tensor]:
    net.eval()
    with torch.no_grad():
        for start in range(0, len(x), LABEL_BATCH):
            yield net(x[start : start + LABEL_BATCH].to(device, torch.float32)).argmax(1).cpu()
