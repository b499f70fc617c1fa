"""Modes and boxes.

Modes: in every mode an attack leaves the module exactly as it found it (weights, running
statistics, training flags, requires_grad, no .grad), crafts in the mode asked for (dropout
on in "train" and "batchnorm_eval", batch statistics in "train"), and the base's clean
prediction and re-check run in eval mode.

Boxes: an unbounded box works for every attack that says it does, the others refuse it
before any work; per-feature boxes hold every returned input; bad boxes are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import FGSM, PGD, Minimize, Smallest, WorstCase
from brittle.attacks.base import Attack, AttackRun, FixedBudgetAttack
from brittle.attacks.registry import attack_class
from brittle.classifier import MODES
from brittle.errors import InputError
from brittle.perturbation import within_budget
from brittle.threat import Norm
from foundation import Counting, bn_dropout_net, digits, fixed, names, small
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = {"linf": 0.12, "l2": 1.2, "l1": 3.0}

ATTACKS: dict[str, Callable[[], Attack]] = {
    **{name: partial(small, name) for name in names()},
    "minimize-pgd": lambda: Minimize(fixed("pgd"), tolerance=0.02),
    "worstcase": lambda: WorstCase([FGSM(0.03), fixed("bim")]),
}


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    x, y = digits()
    return x[:24], y[:24]


def snapshot(net: nn.Module) -> dict[str, object]:
    """Everything an attack must give back: state (values, dtypes, storage), flags, grads."""
    return {
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "storage": {k: v.data_ptr() for k, v in net.state_dict().items()},
        "training": [(name, m.training) for name, m in net.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in net.named_parameters()],
        "tracking": [
            (name, m.track_running_stats)
            for name, m in net.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
        ],
    }


def assert_same(before: dict[str, object], net: nn.Module) -> None:
    after = snapshot(net)
    state_before, state_after = before["state"], after["state"]
    assert isinstance(state_before, dict) and isinstance(state_after, dict)
    assert state_before.keys() == state_after.keys()
    for key, value in state_before.items():
        other = state_after[key]
        assert value.dtype == other.dtype and torch.equal(value, other), key  # bit for bit
    for key in ("storage", "training", "requires_grad", "tracking"):
        assert before[key] == after[key], key
    assert all(p.grad is None for p in net.parameters())


def start_state(net: nn.Sequential, kind: str) -> nn.Sequential:
    """The module as the user left it: all in eval, or in train with batchnorm in eval and
    the last layer's weight frozen (so that restoring is not mistaken for resetting)."""
    if kind == "mixed":
        net.train()
        net[1].eval()
        net[5].weight.requires_grad_(False)
    return net


@pytest.mark.parametrize("start", ["eval", "mixed"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_leave_the_module_as_they_found_it(
    batch: tuple[Tensor, Tensor], name: str, mode: str, start: str
) -> None:
    x, y = batch
    net = start_state(bn_dropout_net(), start)
    before = snapshot(net)
    clf = Classifier(net, mode=mode)  # type: ignore[arg-type]
    ATTACKS[name]()(clf, x, y)
    assert_same(before, net)


@contextmanager
def recording(net: nn.Sequential) -> Iterator[list[tuple[int, bool, bool]]]:
    """Each forward pass: (rows, dropout on, batchnorm on batch statistics)."""
    calls: list[tuple[int, bool, bool]] = []
    bn, dropout = net[1], net[3]

    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        batch_stats = bn.training or bn.running_mean is None  # as BatchNorm decides
        calls.append((args[0].shape[0], dropout.training, batch_stats))

    handle = net.register_forward_pre_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def warmed(clf: Classifier, x: Tensor) -> Classifier:
    """``clf`` with the door's model checks run on inputs like ``x`` (once per shape)."""
    clf.check_outputs(x)
    clf.check_gradients(x)
    return clf


class Twice(FixedBudgetAttack):
    """A test attack that looks at the logits of its inputs twice, and returns them."""

    seen: list[Tensor]

    def _run(self, run: AttackRun) -> Tensor:
        self.seen = [run.access.logits(run.x), run.access.logits(run.x)]
        return run.x


@pytest.mark.parametrize("mode", MODES)
def test_attacks_craft_in_the_mode_asked_for(batch: tuple[Tensor, Tensor], mode: str) -> None:
    x, y = batch
    net = bn_dropout_net()
    before = snapshot(net)
    clf = warmed(Classifier(net, mode=mode), x)  # type: ignore[arg-type]
    probe = Twice(eps=0.1)
    torch.manual_seed(0)  # the dropout masks
    with recording(net) as calls:
        probe(clf, x, y)
    first, second = probe.seen
    # dropout draws new masks on every pass in "train" and "batchnorm_eval"
    assert torch.equal(first, second) is (mode == "eval")
    dropout, batch_stats = mode != "eval", mode == "train"
    assert calls[:2] == [(len(x), dropout, batch_stats)] * 2
    assert all(call[1:] == (False, False) for call in calls[2:])  # the base's passes
    assert_same(before, net)


@pytest.mark.parametrize("mode", MODES)
def test_the_clean_prediction_and_the_recheck_run_in_eval_mode(
    batch: tuple[Tensor, Tensor], mode: str
) -> None:
    x, y = batch
    net = bn_dropout_net()
    clf = warmed(Classifier(net, mode=mode), x)  # type: ignore[arg-type]
    torch.manual_seed(0)  # the dropout masks
    with recording(net) as calls:
        result = PGD(0.12, steps=5, random_start=False)(clf, x, y)
    checks = int(result.verification_queries[0])
    assert bool((result.verification_queries == checks).all())
    crafting, base = calls[:-checks], calls[-checks:]
    assert all(call[1:] == (False, False) for call in base)
    assert all(call[1] is (mode != "eval") for call in crafting)
    assert torch.equal(result.pred_adv, clf.predict(result.x_adv))
    assert torch.equal(result.success, clf.predict(result.x_adv) != y)
    assert torch.equal(result.pred_clean, clf.predict(x))
    if mode != "eval":
        # what the attack sees differs from the verdict: the test can tell them apart
        every, _ = digits()
        with clf.evaluation(mode), torch.no_grad():  # type: ignore[arg-type]
            noisy = clf.logits(every).argmax(1)
        assert not torch.equal(noisy, clf.predict(every))


def strong_dropout() -> nn.Module:
    """A random MLP with Dropout(0.8): its predictions in train mode are mostly noise."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.8), nn.Linear(64, 10)
    ).eval()


@pytest.mark.parametrize("mode", ["train", "batchnorm_eval"])
@pytest.mark.parametrize("name", names())
def test_every_attack_reports_eval_mode_predictions(name: str, mode: str) -> None:
    x, _ = digits()
    x = x[:100]
    clf = Classifier(strong_dropout(), mode=mode)  # type: ignore[arg-type]
    y = clf.predict(x)
    torch.manual_seed(0)  # the dropout masks
    result = small(name)(clf, x, y)
    assert torch.equal(result.pred_clean, y)  # not what the attack saw with dropout on
    assert torch.equal(result.pred_adv, clf.predict(result.x_adv))
    assert torch.equal(result.success, result.pred_adv != y)


def test_instance_norm_running_statistics_are_left_alone(batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(192, 10),
    )
    for mode in MODES:
        before = snapshot(net)
        PGD(0.1, steps=3)(Classifier(net, mode=mode), x, y)
        assert_same(before, net)


def test_the_mode_is_checked() -> None:
    with pytest.raises(InputError, match="mode must be one of eval, train, batchnorm_eval"):
        Classifier(bn_dropout_net(), mode="training")  # type: ignore[arg-type]
    clf = Classifier(bn_dropout_net())
    with pytest.raises(InputError, match="mode must be one of"):
        clf.mode = "test"  # type: ignore[assignment]


# ----------------------------------------------------------------------------- boxes
@pytest.mark.parametrize("name", names())
def test_an_unbounded_box_works_or_is_refused_before_any_work(name: str) -> None:
    clf0, x, y = softmax_on_digits()
    x, y = x[:24], y[:24]
    net = Counting(clf0.module)
    clf = Classifier(net, bounds=(-math.inf, math.inf))
    attack = small(name)
    if not attack_class(name).supports_unbounded:
        with pytest.raises(InputError, match="needs a bounded input box"):
            attack(clf, x, y)
        assert int(net.rows.sum()) == 0
        return
    result = attack(clf, x, y)
    assert bool(torch.isfinite(result.x_adv).all())
    assert torch.equal(result.success, clf.predict(result.x_adv) != y)
    assert bool(result.success.any())
    if attack.eps is not None:
        assert bool(within_budget(result.x_adv - x, attack.norm, attack.eps).all())
    if attack.requires_budget:  # nothing holds the inputs to [0, 1] any more
        assert float(result.x_adv.min()) < 0 or float(result.x_adv.max()) > 1


def test_a_composite_refuses_an_unbounded_box_when_one_of_its_attacks_does() -> None:
    clf0, x, y = softmax_on_digits()
    net = Counting(clf0.module)
    clf = Classifier(net, bounds=(-math.inf, math.inf))
    both = Smallest([small("deepfool"), small("cw")])
    with pytest.raises(InputError, match="Smallest needs a bounded input box"):
        both(clf, x[:5], y[:5])
    assert int(net.rows.sum()) == 0  # DeepFool did not run first
    result = Smallest([small("deepfool"), small("lbfgs")])(clf, x[:5], y[:5])
    assert torch.equal(result.success, clf.predict(result.x_adv) != y[:5])


def per_feature_box(x: Tensor) -> tuple[Tensor, Tensor]:
    """A box per feature just around ``x``: tight on some features, wider on others."""
    g = torch.Generator().manual_seed(0)
    u = 0.05 + 0.95 * torch.rand(2, *x.shape[1:], generator=g)
    low = (x.amin(0) - 0.15 * u[0]).clamp(min=0)
    high = (x.amax(0) + 0.15 * u[1]).clamp(max=1)
    return low, high


def variants() -> list[tuple[str, str | None]]:
    """Every registered attack in every norm it declares (None: it has one norm)."""
    out: list[tuple[str, str | None]] = []
    for name in names():
        cls = attack_class(name)
        declared = {p.name for p in cls.params}
        norms = sorted(n.value for n in cls.norms) if "norm" in declared else [None]
        out += [(name, norm) for norm in norms if norm != "l0"]
    return out


@pytest.mark.parametrize(("name", "norm"), variants())
def test_per_feature_boxes_hold_every_returned_input(name: str, norm: str | None) -> None:
    clf0, x, y = softmax_on_digits()
    x, y = x[:24], y[:24]
    low, high = per_feature_box(x)
    clf = Classifier(clf0.module, bounds=(low, high))
    assert clf.per_feature and clf.input_shape == (1, 8, 8)
    extra: dict[str, object] = {}
    if norm is not None:
        extra["norm"] = norm
        if attack_class(name).requires_budget:
            extra["eps"] = EPS[norm]
    attack = small(name, **extra)
    result = attack(clf, x, y)
    assert bool(((result.x_adv >= low) & (result.x_adv <= high)).all())
    assert torch.equal(result.success, clf.predict(result.x_adv) != y)
    if attack.eps is not None:
        assert bool(within_budget(result.x_adv - x, attack.norm, attack.eps).all())
    if attack.requires_budget and attack.norm is Norm.LINF:  # the box binds somewhere
        inner = ((result.x_adv == high) & (high < 1)) | ((result.x_adv == low) & (low > 0))
        assert bool(inner.any())


def test_inputs_outside_a_per_feature_box_are_refused() -> None:
    clf0, x, y = softmax_on_digits()
    low, high = per_feature_box(x[:5])
    clf = Classifier(clf0.module, bounds=(low, high))
    outside = x[:5].clone()
    where = (high < 1).nonzero()[0]
    outside[(2, *where.tolist())] = high[tuple(where.tolist())] + 0.01
    with pytest.raises(InputError, match="outside the bounds per feature"):
        FGSM(0.1)(clf, outside, y[:5])


def _with(t: Tensor, value: float) -> Tensor:
    t = t.clone()
    t[0, 3, 4] = value
    return t


ZEROS, ONES = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
BAD_BOUNDS: dict[str, tuple[object, object, tuple[int, ...] | None, str]] = {
    "equal somewhere": (ZEROS, _with(ONES, 0.0), None, "low < high for every feature"),
    "inverted somewhere": (ZEROS, _with(ONES, -0.5), None, "low < high for every feature"),
    "inverted": (ONES, ZEROS, None, "low < high for every feature"),
    "nan": (_with(ZEROS, math.nan), ONES, None, "no NaN"),
    "another shape": (torch.zeros(2, 8, 8), torch.ones(2, 8, 8), (1, 8, 8), "shape"),
    "flat": (torch.zeros(64), torch.ones(64), (1, 8, 8), "one input's shape"),
    "shapes that do not meet": (torch.zeros(3, 8, 8), torch.ones(2, 8, 8), None, "shape"),
    "not numbers": (np.array(["a"] * 64), ONES, None, "numbers or arrays"),
    "scalar inverted": (1.0, 0.0, None, "low < high"),
    "not a pair": ((0.0, 0.5, 1.0), None, None, "a pair"),
}


@pytest.mark.parametrize("case", list(BAD_BOUNDS))
def test_bad_boxes_are_refused(case: str) -> None:
    low, high, shape, message = BAD_BOUNDS[case]
    bounds = low if case == "not a pair" else (low, high)
    with pytest.raises(InputError, match=message):
        Classifier(nn.Flatten(), bounds=bounds, input_shape=shape)  # type: ignore[arg-type]


def test_inputs_of_another_shape_than_the_box_are_refused_before_any_work() -> None:
    clf0, x, y = softmax_on_digits()
    net = Counting(nn.Sequential(nn.Flatten(), clf0.module))
    clf = Classifier(net, bounds=(torch.zeros(64), torch.ones(64)))
    assert clf.input_shape == (64,)
    with pytest.raises(InputError, match=r"per-sample shape \(1, 8, 8\) but the model expects"):
        FGSM(0.1)(clf, x[:5], y[:5])
    assert int(net.rows.sum()) == 0
    assert FGSM(0.1)(clf, x[:5].flatten(1), y[:5]).x_adv.shape == (5, 64)


def test_bounds_that_broadcast_give_the_input_shape() -> None:
    net = nn.Flatten()
    rows = Classifier(net, bounds=(torch.zeros(1, 8, 8), torch.ones(8)))
    assert rows.input_shape == (1, 8, 8)
    mixed = Classifier(net, bounds=(0.0, np.full((1, 8, 8), 0.5)))
    assert mixed.input_shape == (1, 8, 8) and mixed.per_feature
    assert float(mixed.envelope()[1]) == 0.5
    plain = Classifier(net, bounds=(np.float32(-1), 2))  # type: ignore[arg-type]
    assert not plain.per_feature and plain.bounds == (-1.0, 2.0)
