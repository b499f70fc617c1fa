"""Training and clean accuracy of a classifier on tensors, with an objective hook.

The default objective is the cross-entropy of the logits. A defence passes its own: a loss
function ``objective(model, x, y) -> loss`` that the loop backpropagates (e.g. a
temperature-scaled cross-entropy), or a :class:`TrainingStep`, which backpropagates itself
(the adversarial objective of Goodfellow 2015, section 6, needs the input gradient of the
clean loss before it can build the rest) and reports its parts (the clean and adversarial
losses) for the progress bar and the history. Labels are class indices ``(N,)`` or soft
labels ``(N, K)``, rows of probabilities (defensive distillation trains on them).

Under a running process group (``torchrun``, :func:`brittle.distributed.join`) the loop is
data-parallel: the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`
and each process trains on its slice of every global batch (:mod:`.sharding`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from brittle.distributed import World, agree, together, world
from brittle.errors import InputError, ModelOutputError
from brittle.validation import (
    as_tensor,
    check_number,
    check_positive,
    check_positive_integer,
)
from brittle.zoo.rng import seeded
from brittle.zoo.sharding import BatchShare, ShardedBatches, sharing

Objective = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""A loss on a mini-batch, ``objective(model, x, y) -> scalar``, backpropagated by the loop."""

SOFT_LABEL_TOLERANCE = 1e-3
"""How far a soft label's row may sum from 1."""
POSTFIX_EVERY = 10
"""The progress bar's running losses are refreshed every this many batches (one host sync)."""


@runtime_checkable
class TrainingStep(Protocol):
    """An objective that computes its own parameter gradients.

    ``parts`` names the losses it reports besides the total (e.g. ``("clean", "adv")``).
    :meth:`check` runs once before training, on the first inputs, and raises
    :class:`~brittle.errors.InputError` for a setting that cannot train this model.
    :meth:`backward` accumulates the gradient of the objective at the mini-batch into the
    parameters' ``.grad`` (they are zeroed before) and returns the detached values
    ``(total, *parts)`` as a 1-D tensor on the model's device.
    """

    parts: tuple[str, ...]

    def check(self, model: nn.Module, x: Tensor, num_classes: int) -> None: ...

    def backward(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass
class TrainHistory:
    """What :func:`train_model` did: the mean training loss of each epoch and the wall time.

    ``loss`` includes the L1 penalty when there is one (it is what was minimised); ``parts``
    holds the per-epoch means of a :class:`TrainingStep`'s parts (e.g. ``"clean"``, ``"adv"``);
    ``step_loss`` the loss of every step, the mean over its global batch (every process's
    rows). ``processes`` is how many processes trained.
    """

    loss: list[float]
    seconds: float
    parts: dict[str, list[float]] = field(default_factory=dict)
    step_loss: list[float] = field(default_factory=list)
    processes: int = 1


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default objective: ``J(theta, x, y) = -mean log softmax(model(x))_y``."""
    return F.cross_entropy(model(x), y)


def radial_likelihood(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The objective of a model whose ``exp(logit_k)`` is the probability of class ``k`` on its
    own (the RBF network of Goodfellow 2015, section 7): each class a Bernoulli,

        J = -mean_n [ logit_y + sum_{k != y} log(1 - exp(logit_k)) ],

    so a unit is confident near its prototype and nowhere else. Logits must be <= 0."""
    logits = model(x)
    own = F.one_hot(y, logits.shape[1]).bool()
    others = torch.log(-torch.expm1(logits.clamp(max=-1e-6)))  # log(1 - p), finite at p = 1
    return -torch.where(own, logits, others).sum(1).mean()


def default_objective(arch: str) -> Objective:
    """The objective an architecture of the zoo trains on without a defence:
    :func:`radial_likelihood` for ``"rbf"``, :func:`cross_entropy` otherwise."""
    return radial_likelihood if arch == "rbf" else cross_entropy


def penalised_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weight tensors that L1 and weight decay act on: parameters named ``*weight``
    with at least two dimensions (linear and convolution weights; not biases, not
    normalisation scales, not the RBF network's prototypes and precisions)."""
    return [p for name, p in model.named_parameters() if name.endswith("weight") and p.ndim >= 2]


def l1_penalty(model: nn.Module) -> Tensor:
    """``sum_W sum_i |W_i|`` over :func:`penalised_weights` (Goodfellow 2015, section 5)."""
    weights = penalised_weights(model)
    if not weights:
        raise InputError("l1 > 0 but the model has no weight tensors to penalise")
    return torch.stack([w.abs().sum() for w in weights]).sum()


def train_model(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: Literal["adam", "sgd"] = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    objective: Objective | TrainingStep | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place on inputs ``x`` ``(N, C, H, W)`` and labels ``y``.

    ``y`` holds class indices ``(N,)`` or soft labels ``(N, K)`` (rows of probabilities).
    Each step minimises ``objective(model, x_b, y_b) + l1 * sum |W|`` on a mini-batch
    (``objective`` defaults to :func:`cross_entropy`; a :class:`TrainingStep` backpropagates
    its own objective, and its parts are shown on the progress bar as running means and
    kept in the history). ``weight_decay`` adds
    ``weight_decay * W`` to the gradient of each weight tensor, i.e. the L2 penalty
    ``(weight_decay / 2) * sum W^2``; L1 and weight decay act on :func:`penalised_weights`
    only. ``momentum`` is used by ``"sgd"`` only. ``on_epoch`` is called after each epoch
    with the number of epochs done (to keep a snapshot, say), on every process.

    ``seed`` fixes the shuffling (a ``torch.Generator``) and any randomness in the model or
    the objective, such as dropout (the global generators are seeded inside and restored
    after), so a model built with ``build_model(..., seed=s)`` and trained with the same
    arguments ends with the same weights on CPU. The data stay where they are; mini-batches
    are moved to ``device`` (default: the model's). The model's train/eval mode is restored.

    Under a running process group of ``size`` processes, every process calls this with the
    same arguments and data (checked: an :class:`~brittle.errors.InputError` on every
    process otherwise) and trains the same model, wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (which gives every process rank 0's
    initial weights and averages the gradients): ``batch_size`` is the global batch, a
    multiple of ``size``, and each process trains on its ``batch_size / size`` rows of it
    (:class:`~brittle.zoo.sharding.ShardedBatches`; an epoch's last, partial global batch
    is left out). The objective crafts its examples on each process's rows, its random draws
    those the one-process loop gives these rows (:func:`~brittle.zoo.sharding.batch_rand`),
    so the losses are the one-process losses up to floating-point sums for objectives whose
    randomness goes through it (dropout masks are drawn per process, and batch norm
    normalises each process's rows). The history holds the losses of the global batches.
    """
    place = world()
    with together("checking the training data and settings"):
        _check_hyperparameters(epochs, batch_size, lr, optimizer, momentum, weight_decay, l1)
        x, y = check_data(x, y, soft=True)
        batches = ShardedBatches(len(x), batch_size, seed, place)
        device = _resolve_device(model, device)
        model.to(device)
        classes = _check_model_on(model, x, y, device)
        step = _as_step(objective if objective is not None else cross_entropy)
        step.check(model, x[:2].to(device), classes)
        opt = _make_optimizer(model, optimizer, lr, momentum, weight_decay)
    recipe = (epochs, batch_size, lr, optimizer, momentum, weight_decay, l1, seed)
    agree(_training_facts(x, y, recipe, step), "the training")
    trained = _data_parallel(model, device) if place.distributed else model
    history = TrainHistory(
        loss=[], seconds=0.0, parts={name: [] for name in step.parts}, processes=place.size
    )
    names = ("loss", *step.parts)
    was_training = model.training
    start = time.perf_counter()
    bar = tqdm(
        total=epochs * len(batches),
        desc="train",
        unit="batch",
        disable=not (progress and place.leader),
    )
    try:
        with _randomness(seed, device, place, batches):
            model.train()
            for epoch in range(epochs):
                total = torch.zeros(len(names), device=device)
                curve: list[Tensor] = []
                seen = 0
                for batch, idx in enumerate(batches.epoch()):
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    opt.zero_grad(set_to_none=True)
                    losses = step.backward(trained, xb, yb)
                    if l1 > 0:
                        penalty = l1 * l1_penalty(model)
                        penalty.backward()  # the same on every process: not averaged
                        losses = losses.clone()
                        losses[0] += penalty.detach()
                    opt.step()
                    total += losses * len(idx)
                    curve.append(losses[:1])
                    seen += len(idx)
                    bar.update()
                    if batch % POSTFIX_EVERY == 0:
                        bar.set_postfix(_postfix(epoch, names, total / seen))
                total, steps = _across_processes(total, torch.cat(curve), place)
                means = (total / (seen * place.size)).tolist()
                history.step_loss.extend(steps.tolist())
                if not all(math.isfinite(v) for v in means):
                    raise ModelOutputError(
                        f"training diverged: the loss is {means[0]} at epoch {epoch + 1}; "
                        f"lower the learning rate (lr={lr:g})"
                    )
                history.loss.append(means[0])
                for name, value in zip(step.parts, means[1:], strict=True):
                    history.parts[name].append(value)
                bar.set_postfix(_postfix(epoch, names, total / (seen * place.size)))
                if on_epoch is not None:
                    on_epoch(epoch + 1)
    finally:
        bar.close()
        model.train(was_training)
    history.seconds = time.perf_counter() - start
    return history


def _training_facts(
    x: Tensor, y: Tensor, recipe: tuple[Any, ...], step: TrainingStep
) -> dict[str, Any]:
    """What every process of a data-parallel training must hold the same: the data's
    shapes and content (SHA-256) and the settings."""
    content = hashlib.sha256()
    for tensor in (x, y):
        content.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).data)
    describe = getattr(step, "describe", None)
    return {
        "the training inputs' shape": tuple(x.shape),
        "the training labels' shape": tuple(y.shape),
        "the training data's SHA-256": content.hexdigest(),
        "(epochs, batch_size, lr, optimizer, momentum, weight_decay, l1, seed)": recipe,
        "the objective": describe() if callable(describe) else type(step).__name__,
    }


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped for data-parallel training: rank 0's parameters and buffers copied
    to every process now, gradients averaged across processes in every backward pass."""
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


@contextlib.contextmanager
def _randomness(
    seed: int, device: torch.device, place: World, batches: ShardedBatches
) -> Iterator[None]:
    """The random state of the loop: torch's global generators seeded with ``seed`` in a
    world of one; under several processes, seeded per process (dropout masks differ from
    process to process) while the objective's per-row draws come from a generator seeded
    with ``seed`` on every process, for the whole global batch (:func:`.sharding.sharing`)."""
    if not place.distributed:
        with seeded(seed, device):
            yield
        return
    own = int(np.random.SeedSequence((seed, place.rank)).generate_state(1, np.uint64)[0])
    shared = torch.Generator(device).manual_seed(seed)
    with (
        seeded(own, device),
        sharing(BatchShare(batches.start, batches.batch_size, shared)),
    ):
        yield


def _across_processes(total: Tensor, curve: Tensor, place: World) -> tuple[Tensor, Tensor]:
    """An epoch's summed losses (each step's losses times its rows) over every process,
    and its curve of step losses averaged over the processes (each the mean of an equal
    share of the global batch, so their mean is the global batch's): one all-reduce."""
    if not place.distributed:
        return total, curve
    both = torch.cat([total, curve])
    dist.all_reduce(both)
    return both[: len(total)], both[len(total) :] / place.size


class LossStep:
    """A loss function as a :class:`TrainingStep`: the loop's backward of its scalar."""

    parts: tuple[str, ...] = ()

    def __init__(self, loss: Objective) -> None:
        self.loss = loss

    def check(self, model: nn.Module, x: Tensor, num_classes: int) -> None:
        """A loss function has no setting to check."""

    def backward(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        loss = self.loss(model, x, y)
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise InputError(
                f"the objective must return a scalar loss, got {got}; reduce it with .mean()"
            )
        loss.backward()
        return loss.detach().reshape(1)


def _as_step(objective: Objective | TrainingStep) -> TrainingStep:
    return objective if isinstance(objective, TrainingStep) else LossStep(objective)


def _postfix(epoch: int, names: tuple[str, ...], means: Tensor) -> dict[str, Any]:
    """The progress bar's fields: the epoch and the running mean of each loss."""
    values = means.tolist()
    return {"epoch": epoch + 1, **{n: f"{v:.4f}" for n, v in zip(names, values, strict=True)}}


def accuracy(
    model: nn.Module,
    x: Any,
    y: Any,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> float:
    """Fraction of inputs whose argmax logit is the label, in eval mode and without gradients.

    The model's previous train/eval mode is restored.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    x, y = check_data(x, y)
    device = _resolve_device(model, device)
    model.to(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
                logits = model(xb.to(device))
                if logits.ndim != 2 or logits.shape[0] != len(xb):
                    raise ModelOutputError(
                        f"the model must return logits of shape (N, classes), got "
                        f"{tuple(logits.shape)} for {len(xb)} inputs"
                    )
                correct += (logits.argmax(dim=1) == yb.to(device)).sum()
    finally:
        model.train(was_training)
    return correct.item() / len(x)


def check_data(x: Any, y: Any, soft: bool = False) -> tuple[Tensor, Tensor]:
    """Validate a non-empty batch ``x`` ``(N, ...)`` of finite floats and labels ``y`` ``(N,)``.

    With ``soft``, ``y`` may also be soft labels ``(N, K)``: finite, non-negative rows that
    sum to 1. Returns ``x`` as float32 and ``y`` as int64 (soft labels as float32), on the
    device they came on.
    """
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if not x.is_floating_point():
        raise InputError(
            f"x must be floating point, got dtype {x.dtype}; convert images with x.float() / 255"
        )
    if x.ndim < 2 or len(x) == 0:
        raise InputError(f"x must be a non-empty batch (N, C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InputError("x contains NaN or infinite values")
    if soft and y.is_floating_point() and y.ndim == 2:
        return x.float(), _check_soft_labels(y, len(x))
    if y.is_floating_point() or y.dtype == torch.bool:
        extra = " or soft labels (N, K) of probabilities" if soft else ""
        raise InputError(f"y must hold integer class indices{extra}, got dtype {y.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(
            f"y must have shape ({len(x)},), one label per input, got {tuple(y.shape)}"
        )
    if int(y.min()) < 0:
        raise InputError(f"y has negative labels (min {int(y.min())}); labels are 0 to K-1")
    return x.float(), y.long()


def _check_soft_labels(y: Tensor, n: int) -> Tensor:
    if len(y) != n:
        raise InputError(f"y must hold one row of soft labels per input ({n}), got {len(y)}")
    if not torch.isfinite(y).all() or bool((y < 0).any()):
        raise InputError("soft labels must be finite and non-negative (rows of probabilities)")
    worst = float((y.sum(1) - 1).abs().max())
    if worst > SOFT_LABEL_TOLERANCE:
        raise InputError(
            f"soft labels must be rows of probabilities summing to 1; a row is {worst:.3g} "
            "away. Take them from a softmax, e.g. brittle.defenses.soft_labels"
        )
    return y.float()


def _check_model_on(model: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> int:
    """Run the model once on two inputs (eval mode, no grad): logits of the right shape, and
    every label below their width (soft labels: one column per logit). The class count."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2].to(device))
    except RuntimeError as err:
        raise InputError(
            f"the model failed on inputs of shape {tuple(x.shape[1:])}: {err}. "
            "Check that the model was built for this input shape (C, H, W)."
        ) from err
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != min(2, len(x)):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelOutputError(f"the model must return logits of shape (N, classes), got {got}")
    classes = out.shape[1]
    if y.is_floating_point():
        if y.shape[1] != classes:
            raise InputError(
                f"the soft labels have {y.shape[1]} columns but the model has {classes} "
                "outputs; they must match"
            )
        return int(classes)
    top = int(y.max())
    if top >= classes:
        raise InputError(
            f"y has labels up to {top} but the model has {classes} outputs (classes 0 to "
            f"{classes - 1}); build the model with num_classes={top + 1} or fix the labels"
        )
    return int(classes)


def _check_hyperparameters(
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    l1: float,
) -> None:
    check_positive_integer(epochs, "epochs")
    check_positive_integer(batch_size, "batch_size")
    check_positive(lr, "lr")
    if optimizer not in ("adam", "sgd"):
        raise InputError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    check_number(momentum, "momentum", 0, 1, high_open=True)
    check_number(weight_decay, "weight_decay", 0)
    check_number(l1, "l1", 0)


def _make_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    decayed = {id(p) for p in penalised_weights(model)}
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters")
    groups = [
        {"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    return torch.optim.Adam(groups, lr=lr)


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
