"""Bad input is refused before any work, with the right error type and a message that helps.

Also: the module's mode and parameters are left as they were, and preprocessing runs inside
the classifier, so that eps is measured in pixel space.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import FGSM
from brittle.errors import (
    BrittleError,
    GradientError,
    InputError,
    ModelOutputError,
    ThreatModelError,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def linear(d: int = 6, k: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k))


def conv(channels: int = 1, k: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, k)
    )


def batch(n: int = 4, d: int = 6, k: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def test_errors_are_value_errors() -> None:
    for cls in (InputError, ModelOutputError, GradientError, ThreatModelError):
        assert issubclass(cls, BrittleError) and issubclass(cls, ValueError)


# ---------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs(bad: float) -> None:
    x, y = batch()
    x[1, 2] = bad
    x[3, 0] = bad
    with pytest.raises(InputError, match=r"NaN or infinite values in 2 sample"):
        FGSM(0.1)(Classifier(linear()), x, y)


def test_images_in_0_255_hint_division() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"outside the bounds \[0, 1\].*divide by 255"):
        FGSM(0.1)(Classifier(linear()), x * 255, y)


def test_uint8_images_hint_division() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"floating point.*uint8.*/ 255"):
        FGSM(0.1)(Classifier(linear()), (x * 255).to(torch.uint8), y)


def test_values_outside_bounds_name_the_range() -> None:
    x, y = batch()
    x[0, 0] = -0.5
    with pytest.raises(InputError, match=r"values in \[-0\.5, .*outside the bounds") as info:
        FGSM(0.1)(Classifier(linear()), x, y)
    assert "255" not in str(info.value)
    # the same values are fine in a box that holds them
    FGSM(0.1)(Classifier(linear(), bounds=(-1.0, 1.0)), x, y)


def test_inputs_must_be_tensors_and_batches() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"torch\.Tensor or numpy array"):
        FGSM(0.1)(Classifier(linear()), x.tolist(), y)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"must be a batch \(N, \.\.\.\)"):
        FGSM(0.1)(Classifier(linear()), x[0], y[:1])


def test_module_instead_of_classifier() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"brittle\.Classifier.*wrap your module"):
        FGSM(0.1)(linear(), x, y)  # type: ignore[arg-type]


def test_declared_input_shape_refuses_other_shapes() -> None:
    clf = Classifier(conv(), input_shape=(1, 4, 4))
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(InputError, match=r"per-sample shape \(1, 5, 5\).*expects \(1, 4, 4\)"):
        FGSM(0.1)(clf, torch.rand(2, 1, 5, 5), y)
    with pytest.raises(InputError, match=r"per-sample shape \(3, 4, 4\).*channel count"):
        FGSM(0.1)(clf, torch.rand(2, 3, 4, 4), y)
    FGSM(0.1)(clf, torch.rand(2, 1, 4, 4), y)  # the declared shape works


def test_wrong_channel_count_without_input_shape() -> None:
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(InputError, match=r"failed on inputs of shape \(3, 4, 4\).*channel"):
        FGSM(0.1)(Classifier(conv(channels=1)), torch.rand(2, 3, 4, 4), y)


def test_wrong_channel_count_on_a_classifier_already_used() -> None:
    """The output check is cached per input shape, so a new shape is checked again
    (regression: a cached check let the conv layer's RuntimeError escape)."""
    clf = Classifier(conv(channels=1))
    y = torch.zeros(2, dtype=torch.long)
    FGSM(0.1)(clf, torch.rand(2, 1, 4, 4), y)
    with pytest.raises(InputError, match="shape"):
        FGSM(0.1)(clf, torch.rand(2, 3, 4, 4), y)


# ---------------------------------------------------------------------------- labels
def test_labels_out_of_range() -> None:
    x, _ = batch(k=3)
    for y in (torch.tensor([0, 1, 3, 0]), torch.tensor([0, -1, 2, 0])):
        with pytest.raises(InputError, match=r"3 classes \(valid: 0 to 2\)"):
            FGSM(0.1)(Classifier(linear(k=3)), x, y)


def test_float_labels() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"integer class indices.*float32"):
        FGSM(0.1)(Classifier(linear()), x, y.float())
    with pytest.raises(InputError, match=r"integer class indices.*bool"):
        FGSM(0.1)(Classifier(linear()), x, y > 0)


def test_wrong_label_length_or_shape() -> None:
    x, y = batch(n=4)
    with pytest.raises(InputError, match=r"shape \(4,\), one label per input; got \(3,\)"):
        FGSM(0.1)(Classifier(linear()), x, y[:3])
    with pytest.raises(InputError, match=r"got \(4, 1\)"):
        FGSM(0.1)(Classifier(linear()), x, y[:, None])


def test_num_classes_disagreeing_with_the_model() -> None:
    x, y = batch(k=3)
    with pytest.raises(ModelOutputError, match="returns 3 outputs per input but num_classes=5"):
        FGSM(0.1)(Classifier(linear(k=3), num_classes=5), x, y)


# ---------------------------------------------------------------------------- eps
@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
def test_bad_eps_at_construction(eps: float) -> None:
    with pytest.raises(InputError, match="FGSM: eps must be a number >= 0"):
        FGSM(eps)


@pytest.mark.parametrize(
    "eps",
    [
        torch.tensor([0.1, -0.1, 0.1, 0.1]),
        torch.tensor([0.1, float("nan"), 0.1, 0.1]),
        torch.tensor([0.1, 0.1]),
        -0.2,
    ],
)
def test_bad_eps_override(eps: Tensor | float) -> None:
    x, y = batch(n=4)
    with pytest.raises(InputError, match=r"eps must be finite and >= 0, one number or one per"):
        FGSM(0.1)(Classifier(linear()), x, y, eps=eps)


# ---------------------------------------------------------------------------- model outputs
class Softmaxed(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x).softmax(1)


def test_probability_outputs_refused_with_logits_hint() -> None:
    x, y = batch()
    with pytest.raises(
        ModelOutputError, match=r"look like probabilities.*logits.*outputs='probabilities'"
    ):
        FGSM(0.1)(Classifier(Softmaxed(linear())), x, y)


def test_probability_outputs_accepted_when_declared() -> None:
    """outputs='probabilities' takes their log; CE on log-softmax(z) is CE on z, so the FGSM
    step is the one on the logits model (compared where the gradient sign is clear)."""
    x, y = batch(n=8)
    base = linear()
    with_probs = FGSM(0.1)(Classifier(Softmaxed(base), outputs="probabilities"), x, y)
    with_logits = FGSM(0.1)(Classifier(base), x, y)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(base(xr), y, reduction="sum"), xr)
    clear = grad.abs() > 1e-4 * grad.abs().amax(1, keepdim=True)
    torch.testing.assert_close(with_probs.x_adv[clear], with_logits.x_adv[clear])
    assert torch.equal(with_probs.pred_adv, with_logits.pred_adv)


def test_log_softmax_outputs_are_logits() -> None:
    """Log-probabilities are valid logits (negative, rows do not sum to one): accepted."""
    x, y = batch()
    inner = linear()
    model = nn.Sequential(inner, nn.LogSoftmax(1))
    res = FGSM(0.1)(Classifier(model), x, y)
    assert torch.equal(res.x_adv, FGSM(0.1)(Classifier(inner), x, y).x_adv)


class Nan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x) * torch.tensor([1.0, float("nan"), 1.0])


def test_model_returning_nan() -> None:
    x, y = batch()
    with pytest.raises(ModelOutputError, match="NaN or infinite outputs"):
        FGSM(0.1)(Classifier(Nan()), x, y)


class NanAboveHalf(nn.Module):
    """Finite logits while every feature is under 0.5, NaN once one goes over."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        broken = (x > 0.5).any(1, keepdim=True)
        return torch.where(broken, float("nan"), self.lin(x))


def test_nan_logits_on_returned_inputs_are_never_correct_answers() -> None:
    """The input checks pass (clean inputs give finite logits); FGSM then pushes features
    over 0.5, where the model returns NaN. A NaN output is never a correct answer: those rows
    are not robust, count as fooled for an untargeted goal (never for a targeted one), are
    counted in nonfinite_outputs, and a warning says so; the metrics agree with each other."""
    x, y = batch(n=8)
    x = x * 0.4
    clf = Classifier(NanAboveHalf())
    with pytest.warns(RuntimeWarning, match="NaN or inf outputs on [1-8] of the 8"):
        result = FGSM(0.3)(clf, x, y)
    broken = (result.x_adv > 0.5).any(1)
    assert bool(broken.any())
    assert torch.equal(result.nonfinite, broken)
    assert bool(result.success[broken].all()) and bool((result.pred_adv[broken] == -1).all())
    assert not bool(result.robust[broken].any())
    s = result.summary()
    assert s["nonfinite_outputs"] == int(broken.sum())
    assert s["robust_accuracy"] == pytest.approx(s["clean_accuracy"] * (1 - s["success_rate"]))
    t = (y + 1) % 3
    with pytest.warns(RuntimeWarning):
        targeted = FGSM(0.3, targeted=True)(clf, x, y, t)
    assert not bool(targeted.success[targeted.nonfinite].any())


class Flat(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sum(1)


def test_model_returning_one_value_per_input() -> None:
    x, y = batch()
    with pytest.raises(ModelOutputError, match=r"one row of logits per input.*got \(4,\)"):
        FGSM(0.1)(Classifier(Flat()), x, y)


# ---------------------------------------------------------------------------- gradients
class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x.detach())


class ThroughNumpy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(torch.from_numpy(np.round(x.detach().numpy(), 3)))


class ArgmaxOneHot(nn.Module):
    """Hard decisions: one-hot of the argmax, scaled so that it does not look like probabilities."""

    def __init__(self, scale: float = 4.0, shift: float = -2.0) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        return F.one_hot(self.lin(x).argmax(1), 3).float() * self.scale + self.shift


class UnusedInput(nn.Module):
    """Output has a graph (through a plain tensor that requires grad) but not to the input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.randn(6, 3, requires_grad=True)  # not a Parameter: stays requiring grad

    def forward(self, x: Tensor) -> Tensor:
        return x.detach() @ self.w


class NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        return grad * float("nan")


class NanGradModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(NanGrad.apply(x))


class SqrtModel(nn.Module):
    """sqrt of the pixels: infinite derivative at 0, a valid input."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x.sqrt())


@pytest.mark.parametrize("model", [Detached, ThroughNumpy, ArgmaxOneHot])
def test_non_differentiable_models(model: type[nn.Module]) -> None:
    x, y = batch()
    with pytest.raises(GradientError, match=r"do not depend differentiably.*black-box"):
        FGSM(0.1)(Classifier(model()), x, y)


def test_one_hot_outputs_refused_either_way() -> None:
    """A plain one-hot looks like probabilities; declared as such, its log has no gradient."""
    x, y = batch()
    with pytest.raises(ModelOutputError, match="probabilities"):
        FGSM(0.1)(Classifier(ArgmaxOneHot(scale=1.0, shift=0.0)), x, y)
    with pytest.raises(GradientError, match="differentiabl"):
        FGSM(0.1)(Classifier(ArgmaxOneHot(1.0, 0.0), outputs="probabilities"), x, y)


def test_gradient_none() -> None:
    x, y = batch()
    with pytest.raises(GradientError, match="gradient with respect to its input is None"):
        FGSM(0.1)(Classifier(UnusedInput()), x, y)


@pytest.mark.parametrize("model", [NanGradModel, SqrtModel])
def test_gradient_not_finite(model: type[nn.Module]) -> None:
    x, y = batch()
    x[0] = 0.0  # sqrt'(0) = inf
    with pytest.raises(GradientError, match="NaN or infinite"):
        FGSM(0.1)(Classifier(model()), x, y)


# ---------------------------------------------------------------------------- targets
def test_targeted_attack_without_target() -> None:
    x, y = batch()
    with pytest.raises(InputError, match=r"targeted=True but no target.*'random'"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y)


def test_target_equal_to_label() -> None:
    x, y = batch(n=4)
    t = (y + 1) % 3
    t[2] = y[2]
    with pytest.raises(InputError, match=r"equals the true label for 1 sample.*index 2"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y, target=t)


def test_target_out_of_range() -> None:
    x, y = batch(n=4)
    t = torch.tensor([3, 1, 1, 1])
    with pytest.raises(InputError, match=r"target has classes in \[1, 3\].*3 classes"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y, target=t)


def test_target_wrong_shape_or_dtype() -> None:
    x, y = batch(n=4)
    with pytest.raises(InputError, match=r"integer classes of shape \(4,\)"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y, target=((y + 1) % 3).float())
    with pytest.raises(InputError, match=r"integer classes of shape \(4,\)"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y, target=((y + 1) % 3)[:2])
    with pytest.raises(InputError, match="unknown target 'most_likely'"):
        FGSM(0.1, targeted=True)(Classifier(linear()), x, y, target="most_likely")  # type: ignore[arg-type]


def test_a_target_states_the_goal_of_an_attack_built_untargeted() -> None:
    x, y = batch()
    clf, t = Classifier(linear()), (y + 1) % 3
    given = FGSM(0.1)(clf, x, y, target=t)
    assert given.target is not None and torch.equal(given.target, t)
    assert torch.equal(given.x_adv, FGSM(0.1, targeted=True)(clf, x, y, target=t).x_adv)


def test_unsupported_norm() -> None:
    with pytest.raises(ThreatModelError, match=r"FGSM works in norms \{l1, l2, linf\}, not 'l0'"):
        FGSM(0.1, norm="l0")


# ---------------------------------------------------------------------------- modes
class Dropping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin1 = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(16)
        self.lin2 = nn.Linear(16, 3)
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return self.lin2(self.drop(F.relu(self.bn(self.lin1(x)))))


def test_train_mode_is_eval_during_attack_and_restored_after() -> None:
    torch.manual_seed(0)
    model = Dropping()
    model.train()
    model.lin2.weight.requires_grad_(False)  # a frozen parameter stays frozen
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    assert model.bn.running_mean is not None
    stats = model.bn.running_mean.clone()
    x, y = batch(n=8)
    first = FGSM(0.1)(Classifier(model), x, y)
    assert model.modes and not any(model.modes)  # every forward ran in eval mode
    assert model.training and model.drop.training and model.bn.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model.bn.running_mean, stats)  # no batch-norm update either
    # deterministic: dropout is off, so the same call gives the same result as in eval mode
    second = FGSM(0.1)(Classifier(model), x, y)
    assert torch.equal(first.x_adv, second.x_adv)
    model.eval()
    third = FGSM(0.1)(Classifier(model), x, y)
    assert torch.equal(first.x_adv, third.x_adv)
    assert not model.training


def test_mode_restored_after_a_refused_call() -> None:
    """The target check runs inside the attack's eval context: the mode must come back."""
    model = Dropping()
    model.train()
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    x, y = batch(n=4)
    with pytest.raises(InputError):
        FGSM(0.1, targeted=True)(Classifier(model), x, y, target=y)
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------- preprocessing
class Normalize(nn.Module):
    mean: Tensor
    std: Tensor

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_preprocessing_inside_so_eps_is_in_pixel_space(norm: str) -> None:
    mean, std = [0.5, 0.3], [0.2, 0.4]
    inner = conv(channels=2)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 2, 4, 4, generator=g) * 0.6 + 0.2  # away from the box edges
    y = torch.randint(0, 4, (6,), generator=g)
    eps = 0.05
    wrapped = FGSM(eps, norm=norm)(Classifier(inner, preprocessing=(mean, std)), x, y)
    as_dict = FGSM(eps, norm=norm)(
        Classifier(inner, preprocessing={"mean": mean, "std": std}), x, y
    )
    internal = FGSM(eps, norm=norm)(Classifier(nn.Sequential(Normalize(mean, std), inner)), x, y)
    torch.testing.assert_close(wrapped.x_adv, internal.x_adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(as_dict.x_adv, internal.x_adv, atol=1e-6, rtol=0)
    assert torch.equal(wrapped.pred_clean, internal.pred_clean)
    assert torch.equal(wrapped.pred_adv, internal.pred_adv)
    # the budget is spent in pixel space: the whole of eps, not eps * std
    size = wrapped.linf if norm == "linf" else wrapped.l2
    torch.testing.assert_close(size, torch.full((6,), eps), rtol=1e-5, atol=1e-6)


def test_preprocessing_std_must_be_positive() -> None:
    with pytest.raises(InputError, match="std must be positive"):
        Classifier(conv(channels=2), preprocessing=([0.5, 0.5], [0.2, 0.0]))


def test_bad_bounds_and_outputs_option() -> None:
    with pytest.raises(InputError, match="low < high"):
        Classifier(linear(), bounds=(1.0, 0.0))
    with pytest.raises(InputError, match="outputs must be 'logits' or 'probabilities'"):
        Classifier(linear(), outputs="scores")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"must be a torch\.nn\.Module"):
        Classifier(lambda x: x)  # type: ignore[arg-type]


FLOAT64_CASES = {
    "fgsm": {"eps": 0.3},
    "bim": {"eps": 0.3},
    "pgd": {"eps": 0.3},
    "mifgsm": {"eps": 0.3},
    "lbfgs": {},
    "cw": {"steps": 50, "lr": 0.1, "initial_const": 0.1},
    "deepfool": {"steps": 20},
}


@pytest.mark.parametrize("name", sorted(FLOAT64_CASES))
def test_float64_models_are_attacked_in_float64(name: str) -> None:
    """A double-precision model gets double inputs (not a dtype error) and double results,
    verified like any other: success is the model's verdict on the returned inputs."""
    from brittle.attacks.registry import make_attack
    from helpers import softmax_on_digits

    clf32, x32, y = softmax_on_digits()
    clf = Classifier(copy.deepcopy(clf32.module).double())
    x, y = x32[:20].double(), y[:20]
    target = "random" if name == "lbfgs" else None  # L-BFGS is a targeted attack
    result = make_attack(name, **FLOAT64_CASES[name])(clf, x, y, target=target)
    assert clf.dtype == torch.float64 and result.x_adv.dtype == torch.float64
    pred = clf.predict(result.x_adv)
    assert torch.equal(result.success, pred == result.target if target else pred != y)
    assert float(result.success.float().mean()) >= 0.5
