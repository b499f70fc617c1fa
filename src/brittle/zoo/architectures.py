"""The papers' classifiers, each a plain ``nn.Module`` from inputs ``(N, C, H, W)`` to logits.

Every network returns logits, the last layer before softmax (what attacks and the forward
derivative of Papernot 2016 need), and records in ``arch_kwargs`` the constructor arguments
that a checkpoint needs to rebuild it (see :mod:`brittle.zoo.checkpoint`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle.errors import InputError
from brittle.validation import check_integer, is_integer, is_shape
from brittle.zoo.rng import seeded

InputShape = tuple[int, int, int]


class ZooModel(nn.Module):
    """A network of the zoo: knows its architecture name, input shape, classes and kwargs."""

    arch: ClassVar[str]

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.input_shape: InputShape = _check_input_shape(input_shape)
        self.num_classes = check_integer(num_classes, "num_classes", low=2)
        self.arch_kwargs: dict[str, Any] = {}

    @property
    def num_features(self) -> int:
        """Number of input features, ``C * H * W``."""
        return math.prod(self.input_shape)


class SoftmaxRegression(ZooModel):
    """Multinomial logistic regression: ``logits = W x + b`` (Goodfellow 2015's shallow softmax)."""

    arch = "softmax"

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape, num_classes)
        self.linear = nn.Linear(self.num_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(x.flatten(1))
        return out


class LogisticRegression(ZooModel):
    """Binary logistic regression (Goodfellow 2015, section 5) with logits ``[0, z]``.

    One score ``z = w^T x + b``; the model returns the two logits ``[0, z]`` per row, so that
    ``softmax([0, z])[1] = e^z / (1 + e^z) = sigmoid(z)`` is exactly ``P(y = 1 | x)``. Written
    as a two-class model, it goes through cross-entropy training, every attack and every metric
    unchanged (they all expect one logit per class), and the gradient of the two-class
    cross-entropy with respect to ``x`` equals that of the logistic loss ``zeta(-(2y - 1) z)``.
    """

    arch = "logistic"

    def __init__(self, input_shape: Sequence[int], num_classes: int = 2) -> None:
        if num_classes != 2:
            raise InputError(
                f"the 'logistic' architecture is binary and needs num_classes=2, got "
                f"{num_classes}; relabel the two classes as 0 and 1 (e.g. 3 vs 7), or use "
                "arch='softmax' for more classes"
            )
        super().__init__(input_shape, num_classes)
        self.linear = nn.Linear(self.num_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.linear(x.flatten(1))
        return torch.cat([torch.zeros_like(z), z], dim=1)


class MLP(ZooModel):
    """Fully connected ReLU network: ``Linear -> ReLU`` per hidden size, then ``Linear``."""

    arch = "mlp"

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 256)
    ) -> None:
        super().__init__(input_shape, num_classes)
        sizes = _check_sizes(hidden, "hidden")
        self.arch_kwargs = {"hidden": list(sizes)}
        layers: list[nn.Module] = [nn.Flatten()]
        width = self.num_features
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class Maxout(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): ``h_i(x) = max_{j in [1, k]} (x^T W_ij + b_ij)``."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.linear(x)
        return z.view(-1, self.units, self.pieces).amax(dim=2)


class MaxoutNetwork(ZooModel):
    """The maxout network of Goodfellow 2015 on MNIST (Goodfellow et al. 2013's architecture).

    Two maxout layers of ``units`` units with ``pieces`` linear pieces each (240 x 5 by
    default), dropout before each layer (on the inputs and on the hidden units), then a
    linear layer to the logits.
    """

    arch = "maxout"

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        units: int = 240,
        pieces: int = 5,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(input_shape, num_classes)
        units = _check_sizes([units], "units")[0]
        pieces = _check_sizes([pieces], "pieces")[0]
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout}")
        self.arch_kwargs = {"units": units, "pieces": pieces, "dropout": dropout}
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            Maxout(self.num_features, units, pieces),
            nn.Dropout(dropout),
            Maxout(units, units, pieces),
            nn.Dropout(dropout),
            nn.Linear(units, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class LeNet(ZooModel):
    """LeNet-5-style CNN of Papernot 2016's MNIST experiments.

    Per entry of ``channels``: 5x5 convolution (padding 2, so the size is kept) -> ReLU ->
    2x2 max-pooling; then ``Linear -> ReLU`` per entry of ``hidden`` and a linear layer to the
    logits. Defaults: conv 32, conv 64, fc 200, fc 200. The flattened size is computed from
    ``input_shape``, so 28x28 and 8x8 images, with 1 or 3 channels, all work.
    """

    arch = "lenet"

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (200, 200),
    ) -> None:
        super().__init__(input_shape, num_classes)
        conv_sizes = _check_sizes(channels, "channels")
        fc_sizes = _check_sizes(hidden, "hidden")
        self.arch_kwargs = {"channels": list(conv_sizes), "hidden": list(fc_sizes)}
        depth, height, width = self.input_shape
        shrink = 2 ** len(conv_sizes)
        if height < shrink or width < shrink:
            raise InputError(
                f"lenet with {len(conv_sizes)} conv+pool stages halves the image "
                f"{len(conv_sizes)} times and needs images of at least {shrink}x{shrink}, got "
                f"{height}x{width}; pass fewer channels, e.g. channels=(32,)"
            )
        layers: list[nn.Module] = []
        for size in conv_sizes:
            layers += [nn.Conv2d(depth, size, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
            depth, height, width = size, height // 2, width // 2
        layers.append(nn.Flatten())
        features = depth * height * width
        for size in fc_sizes:
            layers += [nn.Linear(features, size), nn.ReLU()]
            features = size
        layers.append(nn.Linear(features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class RBFNetwork(ZooModel):
    """The RBF network of Goodfellow 2015, section 7: one radial unit per class.

    Unit ``k`` models ``p(y = k | x) = exp((x - mu_k)^T beta_k (x - mu_k))`` with a
    negative-definite diagonal ``beta_k``; the module returns its logarithm,

        logit_k(x) = -sum_i beta_ki (x_i - mu_ki)^2,   beta_ki = softplus(rho_ki) >= 0,

    so every logit is <= 0. The prediction is the argmax of the logits; the per-class
    confidence is ``exp(logit_k)``, which is high only near the prototype ``mu_k`` (so the
    network errs with low confidence) and is *not* a softmax: the classes do not compete and
    their confidences need not sum to one. It trains on :func:`~brittle.zoo.train.radial_likelihood`,
    the likelihood of each class's own Bernoulli ``exp(logit_k)``; cross-entropy on the logits
    would only fit their differences and leave the confidences meaningless.

    ``init_means`` (``(K, C, H, W)`` or ``(K, C*H*W)``, e.g. the class means of the training
    data) sets the prototypes; by default they are drawn uniformly in ``[0, 1)``, the usual
    input box. ``beta`` starts at ``1 / (C*H*W)``, so the initial logits are of order one.
    ``init_means`` only initialises: it is not recorded in ``arch_kwargs`` because the
    trained prototypes are in the state_dict.
    """

    arch = "rbf"

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, init_means: Tensor | None = None
    ) -> None:
        super().__init__(input_shape, num_classes)
        shape = (num_classes, self.num_features)
        if init_means is None:
            means = torch.rand(shape)
        else:
            means = torch.as_tensor(init_means, dtype=torch.float32)
            if means.numel() != math.prod(shape) or means.shape[0] != num_classes:
                raise InputError(
                    f"init_means must hold one prototype per class, shape "
                    f"({num_classes}, {', '.join(map(str, self.input_shape))}) or {shape}; "
                    f"got {tuple(means.shape)}"
                )
            means = means.reshape(shape).clone()
        self.means = nn.Parameter(means)
        # softplus(rho) = 1 / D  <=>  rho = log(exp(1 / D) - 1)
        rho = math.log(math.expm1(1.0 / self.num_features))
        self.rho = nn.Parameter(torch.full(shape, rho))

    @property
    def beta(self) -> Tensor:
        """The non-negative diagonal precisions ``beta = softplus(rho)``, shape ``(K, D)``."""
        return F.softplus(self.rho)

    def forward(self, x: Tensor) -> Tensor:
        # sum_i beta_ki (x_i - mu_ki)^2 = x^2 . beta_k - 2 x . (beta_k mu_k) + beta_k . mu_k^2:
        # three matrix products instead of an (N, K, D) tensor
        x = x.flatten(1)
        beta = self.beta
        distance = x.square() @ beta.T - 2 * x @ (beta * self.means).T
        distance = distance + (beta * self.means.square()).sum(1)
        return -distance.clamp_min(0)


ARCHITECTURES: dict[str, Callable[..., ZooModel]] = {
    cls.arch: cls
    for cls in (SoftmaxRegression, LogisticRegression, MLP, MaxoutNetwork, LeNet, RBFNetwork)
}
"""Architecture names -> their builders ``(input_shape, num_classes, **kwargs)``."""


def build_model(
    arch: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> ZooModel:
    """Build the network ``arch`` for inputs of shape ``(C, H, W)`` and ``num_classes`` classes.

    With ``seed`` the initialisation is deterministic (the global random state of the caller
    is left untouched). ``kwargs`` go to the architecture (e.g. ``hidden=(512,)`` for
    ``"mlp"``) and are recorded on the module as ``arch_kwargs`` for checkpoints.
    """
    builder = ARCHITECTURES.get(arch)
    if builder is None:
        raise InputError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}")
    options = [p for p in inspect.signature(builder).parameters][2:]  # after shape, classes
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise InputError(
            f"architecture {arch!r} does not take {', '.join(unknown)}; its options are: "
            f"{', '.join(options) or 'none'}"
        )
    with seeded(seed):
        return builder(input_shape, num_classes, **kwargs)


def class_means(x: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """The mean input of each class, ``(K, C, H, W)``: the RBF network's initial prototypes
    (a class without samples gets the mean of all inputs)."""
    onehot = F.one_hot(y.long(), num_classes).to(x.dtype)  # (N, K)
    counts = onehot.sum(0)
    sums = onehot.T @ x.flatten(1)
    means = torch.where(
        counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], x.flatten(1).mean(0)
    )
    return means.view(num_classes, *x.shape[1:])


def initial_kwargs(arch: str, x: Tensor, y: Tensor, num_classes: int) -> dict[str, Any]:
    """What an architecture takes from its training data when built for it: the RBF
    network's prototypes start at the class means; the others take nothing."""
    return {"init_means": class_means(x, y, num_classes)} if arch == "rbf" else {}


def _check_input_shape(input_shape: Sequence[int]) -> InputShape:
    shape = tuple(input_shape)
    if len(shape) != 3 or not is_shape(shape):
        raise InputError(
            f"input_shape must be three positive integers (C, H, W), got {input_shape!r}; "
            "e.g. (1, 28, 28) for MNIST"
        )
    return (shape[0], shape[1], shape[2])


def _check_sizes(sizes: Sequence[int], name: str) -> tuple[int, ...]:
    values = tuple(sizes)
    if not all(is_integer(s) and s > 0 for s in values):
        raise InputError(f"{name} must be positive integers, got {sizes!r}")
    return values
