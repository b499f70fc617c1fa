"""Training and clean accuracy of a classifier on tensors, with an objective hook.

The default objective is the cross-entropy of the logits; a defence passes its own (e.g. the
adversarial objective of Goodfellow 2015, section 6) as ``objective(model, x, y) -> loss``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from brittle.errors import InputError, ModelOutputError
from brittle.model import as_tensor

from .rng import seeded

Objective = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class TrainHistory:
    """What :func:`train_model` did: the mean training loss of each epoch and the wall time.

    ``loss`` includes the L1 penalty when there is one (it is what was minimised).
    """

    loss: list[float]
    seconds: float


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default objective: ``J(theta, x, y) = -mean log softmax(model(x))_y``."""
    return F.cross_entropy(model(x), y)


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
    objective: Objective | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place on inputs ``x`` ``(N, C, H, W)`` and integer labels ``y``.

    Each step minimises ``objective(model, x_b, y_b) + l1 * sum |W|`` on a mini-batch
    (``objective`` defaults to :func:`cross_entropy`). ``weight_decay`` adds
    ``weight_decay * W`` to the gradient of each weight tensor, i.e. the L2 penalty
    ``(weight_decay / 2) * sum W^2``; L1 and weight decay act on :func:`penalised_weights`
    only. ``momentum`` is used by ``"sgd"`` only. ``on_epoch`` is called after each epoch
    with the number of epochs done (to keep a snapshot, say).

    ``seed`` fixes the shuffling (a ``torch.Generator``) and any randomness in the model or
    the objective, such as dropout (the global generators are seeded inside and restored
    after), so a model built with ``build_model(..., seed=s)`` and trained with the same
    arguments ends with the same weights on CPU. The data stay where they are; mini-batches
    are moved to ``device`` (default: the model's). The model's train/eval mode is restored.
    """
    _check_hyperparameters(epochs, batch_size, lr, optimizer, momentum, weight_decay, l1)
    x, y = check_data(x, y)
    device = _resolve_device(model, device)
    model.to(device)
    _check_model_on(model, x, y, device)
    loss_fn = objective if objective is not None else cross_entropy
    opt = _make_optimizer(model, optimizer, lr, momentum, weight_decay)
    n_batches = math.ceil(len(x) / batch_size)
    history = TrainHistory(loss=[], seconds=0.0)
    was_training = model.training
    start = time.perf_counter()
    shuffle = torch.Generator().manual_seed(seed)
    bar = tqdm(total=epochs * n_batches, desc="train", unit="batch", disable=not progress)
    try:
        with seeded(seed, device):
            model.train()
            for epoch in range(epochs):
                total = torch.zeros((), device=device)
                for idx in torch.randperm(len(x), generator=shuffle).split(batch_size):
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    loss = loss_fn(model, xb, yb)
                    if loss.ndim != 0:
                        raise InputError(
                            f"the objective must return a scalar loss, got shape "
                            f"{tuple(loss.shape)}; reduce it with .mean()"
                        )
                    if l1 > 0:
                        loss = loss + l1 * l1_penalty(model)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(idx)
                    bar.update()
                epoch_loss = total.item() / len(x)
                if not math.isfinite(epoch_loss):
                    raise ModelOutputError(
                        f"training diverged: the loss is {epoch_loss} at epoch {epoch + 1}; "
                        f"lower the learning rate (lr={lr:g})"
                    )
                history.loss.append(epoch_loss)
                bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_loss:.4f}")
                if on_epoch is not None:
                    on_epoch(epoch + 1)
    finally:
        bar.close()
        model.train(was_training)
    history.seconds = time.perf_counter() - start
    return history


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


def check_data(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Validate a non-empty batch ``x`` ``(N, ...)`` of finite floats and labels ``y`` ``(N,)``.

    Returns ``x`` as float32 and ``y`` as int64, on the device they came on.
    """
    x, y = as_tensor(x, "x"), as_tensor(y, "y")
    if not x.is_floating_point():
        raise InputError(
            f"x must be floating point, got dtype {x.dtype}; convert images with x.float() / 255"
        )
    if x.ndim < 2 or len(x) == 0:
        raise InputError(f"x must be a non-empty batch (N, C, H, W), got shape {tuple(x.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"y must hold integer class indices, got dtype {y.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(
            f"y must have shape ({len(x)},), one label per input, got {tuple(y.shape)}"
        )
    if not torch.isfinite(x).all():
        raise InputError("x contains NaN or infinite values")
    if int(y.min()) < 0:
        raise InputError(f"y has negative labels (min {int(y.min())}); labels are 0 to K-1")
    return x.float(), y.long()


def _check_model_on(model: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> None:
    """Run the model once on two inputs (eval mode, no grad): logits of the right shape, and
    every label below their width."""
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
    classes, top = out.shape[1], int(y.max())
    if top >= classes:
        raise InputError(
            f"y has labels up to {top} but the model has {classes} outputs (classes 0 to "
            f"{classes - 1}); build the model with num_classes={top + 1} or fix the labels"
        )


def _check_hyperparameters(
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    l1: float,
) -> None:
    if epochs < 1 or batch_size < 1:
        raise InputError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not lr > 0:
        raise InputError(f"lr must be positive, got {lr}")
    if optimizer not in ("adam", "sgd"):
        raise InputError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if not 0 <= momentum < 1:
        raise InputError(f"momentum must be in [0, 1), got {momentum}")
    if weight_decay < 0 or l1 < 0:
        raise InputError(f"weight_decay and l1 must be >= 0, got {weight_decay} and {l1}")


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
