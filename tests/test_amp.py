"""Reduced precision (``amp``): the attacks' forward passes run under autocast, while the
clean prediction and the re-check of every returned input stay at the model's precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import brittle
from brittle import Classifier, Oracle
from brittle.attacks import PGD
from brittle.errors import InputError
from brittle.eval.spec import ModelRef

SHAPE = (1, 8, 8)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def _data(n: int = 24) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand((n, *SHAPE), generator=g)
    with torch.no_grad():
        y = _net()(x).argmax(1)
    return x, y


class _Dtypes:
    """The dtypes the network's linear layers computed in, pass by pass."""

    def __init__(self, module: nn.Module) -> None:
        self.seen: list[torch.dtype] = []
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                layer.register_forward_hook(lambda _m, _i, out: self.seen.append(out.dtype))


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_crafting_passes_run_at_the_reduced_precision_and_checks_at_full(
    amp: str, dtype: torch.dtype
) -> None:
    net = _net()
    dtypes = _Dtypes(net)
    clf = Classifier(net, amp=amp)  # type: ignore[arg-type]
    x, _ = _data()
    logits = clf.logits(x)
    assert logits.dtype == torch.float32  # cast back: the attacks' arithmetic stays float32
    assert set(dtypes.seen) == {dtype}
    dtypes.seen.clear()
    exact = clf.predict_scores(x)
    assert set(dtypes.seen) == {torch.float32}
    with torch.no_grad():
        assert torch.equal(exact, net(x))  # bit for bit the module's own float32 logits
    assert torch.equal(clf.predict(x), net(x).argmax(1))
    assert torch.allclose(logits, exact, atol=0.05, rtol=0.05)


def test_an_attack_under_amp_reports_only_what_full_precision_confirms() -> None:
    net = _net()
    x, y = _data()
    result = PGD(eps=0.1, steps=10)(Classifier(net, amp="bf16"), x, y)
    with torch.no_grad():
        pred = net(result.x_adv).argmax(1)
    assert torch.equal(result.pred_adv, pred)
    assert torch.equal(result.success, pred != y)
    assert bool((result.linf <= 0.1 + 1e-6).all())
    assert bool(result.success.any())  # a real attack, not a no-op


def test_bad_amp_is_refused() -> None:
    with pytest.raises(InputError, match="amp must be one of bf16, fp16"):
        Classifier(_net(), amp="fp8")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="amp must be one of"):
        ModelRef(spec="m.pt", amp="half")


def test_amp_is_part_of_the_evaluation_and_its_identity(tmp_path: Path) -> None:
    x, y = _data()
    brittle.evaluate(
        _net(), (x, y), out=tmp_path, eps=0.1, attacks="pgd:steps=5", amp="bf16", progress=False
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["spec"]["model"]["amp"] == "bf16"
    with pytest.raises(InputError, match="another run"):  # another precision: never mixed rows
        brittle.evaluate(
            _net(), (x, y), out=tmp_path, eps=0.1, attacks="pgd:steps=5", progress=False
        )


def test_amp_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    x, y = _data()
    net = _net()
    oracle = Oracle(lambda t: net(t), num_classes=3, input_shape=SHAPE, outputs="scores")
    with pytest.raises(InputError, match=r"amp is for a plain nn\.Module"):
        brittle.evaluate(oracle, (x, y), out=tmp_path, attacks="square", amp="bf16", progress=False)
    with pytest.raises(InputError, match="a Classifier states its own"):
        brittle.evaluate(Classifier(net), (x, y), out=tmp_path, amp="bf16", progress=False)


def test_a_function_preprocessing_is_refused_by_bound_propagation() -> None:
    from brittle.certify.layers import network_ops

    clf = Classifier(
        _net(), preprocessing=lambda t: torch.round(t * 7) / 7, preprocessing_backward="identity"
    )
    with pytest.raises(InputError, match="preprocessing is a function"):
        network_ops(clf)


def test_precision_and_eot_are_part_of_the_run_identity() -> None:
    from brittle.data.source import TensorSource
    from brittle.eot import EOT
    from brittle.eval.plan import make_plan
    from brittle.eval.spec import AttackSpec, DataRef, EvaluationSpec
    from brittle.eval.victim import open_victim

    x, y = _data()
    spec = EvaluationSpec(
        model=ModelRef("<python>"), data=DataRef(), attacks=(AttackSpec.of("fgsm"),)
    )
    keys = set()
    for amp, eot in ((None, None), ("bf16", None), (None, EOT()), (None, EOT(5, 3))):
        clf = Classifier(_net(), amp=amp)  # type: ignore[arg-type]
        clf.eot = eot
        target = open_victim((clf, {"sha256": "same"}), TensorSource(x, y))
        keys.add(make_plan(spec, target).key)
    assert len(keys) == 4
