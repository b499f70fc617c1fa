"""The evaluation as one object: the spec, the budgets as written, and ``brittle.evaluate``
over every form of model and data a user holds, streamed and resumable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import brittle
from brittle import Classifier, Oracle
from brittle.budget import Budget, parse_budget, parse_budgets
from brittle.data.source import Source, TensorSource
from brittle.errors import BrittleError, InputError
from brittle.eval import AttackSpec, EvaluationSpec
from brittle.eval.pipeline import saved_spec
from brittle.eval.spec import DataRef, ModelRef
from brittle.eval.victim import resolve_device

N = 30
SHAPE = (1, 4, 4)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _data(seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((N, *SHAPE), generator=g)
    net = _net()
    with torch.no_grad():
        y = net(x).argmax(1)  # every sample correctly classified: success rates mean something
    y[:5] = (y[:5] + 1) % 3  # and a few that are not
    return x, y


def _figures(report: dict) -> list[tuple[float, float, float]]:
    return [
        (r["clean_accuracy"], r["success_rate"], r["robust_accuracy"]) for r in report["results"]
    ]


# ------------------------------------------------------------------ budgets as written
@pytest.mark.parametrize(
    ("text", "value"), [("8/255", 8 / 255), ("0.3", 0.3), (" 1e-2 ", 0.01), ("0.5/2", 0.25)]
)
def test_a_budget_keeps_its_text(text: str, value: float) -> None:
    budget = parse_budget(text)
    assert isinstance(budget, float) and budget == pytest.approx(value)
    assert budget.text == text.strip()


@pytest.mark.parametrize("text", ["-0.1", "abc", "1/0", "nan", "inf", "8/", "True"])
def test_a_bad_budget_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(InputError, match="8/255"):
        parse_budget(text)


def test_budgets_are_sorted_without_repeats() -> None:
    budgets = parse_budgets("8/255,2/255,0.03137254901960784,0")
    assert [b.text for b in budgets] == ["0", "2/255", "8/255"]
    assert all(isinstance(b, Budget) for b in budgets)


# ------------------------------------------------------------------ the spec
def test_the_spec_round_trips_through_json() -> None:
    spec = EvaluationSpec(
        model=ModelRef(
            "net.py:Net", weights="w.safetensors", preprocess=((0.5,), (0.25,)), classes=("a", "b")
        ),
        data=DataRef("folder", "/data", "test", 20),
        attacks=(
            AttackSpec.parse("pgd:steps=7:step-size=0.01", seed=3),
            AttackSpec.parse("square", survivors_only=True, seed=3),
        ),
        eps=("2/255", "8/255"),
        seed=3,
        batch_size=17,
    )
    again = EvaluationSpec.from_json(json.loads(json.dumps(spec.as_json())))
    assert again == spec
    assert [b.text for b in again.eps] == ["2/255", "8/255"]
    assert again.attacks[0].params == {"steps": 7, "step_size": 0.01}
    assert again.attacks[0].key == spec.attacks[0].key


def test_an_attack_key_is_its_results_identity() -> None:
    assert AttackSpec.parse("pgd:steps=7").key == AttackSpec("pgd", {"steps": 7}).key
    assert AttackSpec.parse("pgd:steps=7").key != AttackSpec.parse("pgd:steps=8").key
    assert AttackSpec.parse("pgd").key != AttackSpec.parse("pgd", target="random").key


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AttackSpec.parse("pgd:eps=0.1"), "budget"),
        (lambda: AttackSpec("pgd", {"nope": 1}), "does not take nope"),
        (lambda: AttackSpec.parse("nosuch"), "unknown attack"),
        (lambda: AttackSpec.parse("pgd", seed=-1), "seed"),
    ],
)
def test_a_bad_attack_is_refused_at_its_door(make: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()  # type: ignore[operator]


def test_a_spec_refuses_what_cannot_be_run() -> None:
    ref, data = ModelRef("m.pt"), DataRef()
    with pytest.raises(InputError, match="listed twice"):
        EvaluationSpec(ref, data, (AttackSpec("fgsm"), AttackSpec("fgsm")))
    with pytest.raises(InputError, match="first attack"):
        EvaluationSpec(ref, data, (AttackSpec("fgsm", survivors_only=True),))
    with pytest.raises(InputError, match="not both"):
        EvaluationSpec(ref, data, (AttackSpec("fgsm"),), suite="standard")
    with pytest.raises(InputError, match="--batch-size"):
        EvaluationSpec(ref, data, (AttackSpec("fgsm"),), batch_size=0)
    with pytest.raises(InputError, match="--n"):
        DataRef(n=0)


@pytest.mark.parametrize("name", ["meta", "mps", "tpu", "cuda:7", "nonsense"])
def test_a_device_that_cannot_run_is_refused(name: str) -> None:
    if name.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(InputError, match="cpu"):
        resolve_device(name)


# ------------------------------------------------------------------ brittle.evaluate
def test_evaluate_a_module_on_tensors_writes_the_report_and_resumes(tmp_path: Path) -> None:
    x, y = _data()
    first = brittle.evaluate(
        _net(), (x, y), out=tmp_path, attacks=["fgsm", "pgd:steps=5"], eps="2/255,0.2",
        progress=False,
    )  # fmt: skip
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.html").is_file()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["threat_model"]["eps_text"] == ["2/255", "0.2"]
    assert report["results"][0]["n"] == N
    assert first.evaluation.attacked == 2 * 2 * N
    again = brittle.evaluate(
        _net(), (x, y), out=tmp_path, attacks=["fgsm", "pgd:steps=5"], eps="2/255,0.2",
        progress=False,
    )  # fmt: skip
    assert again.evaluation.attacked == 0 and again.evaluation.reused == 2 * 2 * N
    assert _figures(again.report) == _figures(first.report)


def test_other_weights_are_another_run(tmp_path: Path) -> None:
    x, y = _data()
    brittle.evaluate(_net(0), (x, y), out=tmp_path, eps=0.1, progress=False)
    with pytest.raises(InputError, match=r"another run .*the model"):
        brittle.evaluate(_net(5), (x, y), out=tmp_path, eps=0.1, progress=False)


def test_other_data_of_the_same_name_are_another_run(tmp_path: Path) -> None:
    x, y = _data()
    net = _net()
    brittle.evaluate(net, TensorSource(x, y, name="digits"), out=tmp_path, eps=0.1, progress=False)
    with pytest.raises(InputError, match=r"another run .*the data"):
        brittle.evaluate(
            net, TensorSource(x.flip(0), y.flip(0), name="digits"), out=tmp_path, eps=0.1,
            progress=False,
        )  # fmt: skip


class CountingSource(Source):
    """Tensors behind a source that records every fetch."""

    kind = "counting"

    def __init__(self, x: Tensor, y: Tensor) -> None:
        super().__init__(name="counting", classes=["0", "1", "2"], input_shape=x.shape[1:])
        self.x, self.y = x, y
        self.fetches: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.x)

    def fetch(self, ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        self.fetches.append(list(ids))
        index = torch.as_tensor(list(ids), dtype=torch.long)
        return self.x[index], self.y[index]

    def _digest(self) -> str:
        return TensorSource(self.x, self.y).sha256


def test_the_engine_streams_the_data_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import brittle.eval.pipeline as pipeline

    monkeypatch.setattr(pipeline, "PROBE_SAMPLES", 5)  # the probes fetch their first samples
    x, y = _data()
    source = CountingSource(x, y)
    brittle.evaluate(_net(), source, out=tmp_path, eps="0.1", batch_size=7, progress=False)
    assert max(len(f) for f in source.fetches) <= 7  # never the whole set at once
    attacked = [i for f in source.fetches if len(f) > 5 or f != source.fetches[-1] for i in f]
    assert set(attacked) == set(range(N))


@pytest.mark.parametrize("form", ["tensors", "dataset", "loader"])
def test_every_form_of_data_gives_the_same_figures(tmp_path: Path, form: str) -> None:
    x, y = _data()
    data: object = {
        "tensors": (x, y),
        "dataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=4),
    }[form]
    got = brittle.evaluate(_net(), data, out=tmp_path / form, eps=[0.05, 0.2], progress=False)
    want = brittle.evaluate(_net(), (x, y), out=tmp_path / "ref", eps=[0.05, 0.2], progress=False)
    assert _figures(got.report) == _figures(want.report)


def test_a_classifier_with_preprocessing_inside_keeps_eps_in_pixels(tmp_path: Path) -> None:
    x, y = _data()
    pre = ((0.5,), (0.25,))
    wrapped = brittle.evaluate(
        _net(), (x, y), out=tmp_path / "a", eps=0.1, preprocess=pre, progress=False
    )
    report = wrapped.report
    linf = [r["mean_linf"] for r in report["results"] if r["success_rate"] > 0]
    assert all(v <= 0.1 + 1e-6 for v in linf)
    assert wrapped.evaluation.summaries[0]["n"] == N


def test_a_score_oracle_is_evaluated_by_score_attacks_only(tmp_path: Path) -> None:
    x, y = _data()
    net = _net().eval()

    def predict(batch: Tensor) -> Tensor:
        with torch.no_grad():
            return net(batch)

    oracle = Oracle(predict, num_classes=3, input_shape=SHAPE, outputs="scores")
    with pytest.raises(BrittleError, match=r"FGSM needs capability WHITE_BOX.*ORACLE_SCORES"):
        brittle.evaluate(oracle, (x, y), out=tmp_path / "fgsm", eps=0.1, progress=False)
    outcome = brittle.evaluate(
        oracle, (x, y), out=tmp_path / "simba", attacks="simba:max_queries=50", eps=0.1,
        progress=False,
    )  # fmt: skip
    assert outcome.report["threat_model"]["capability"] == "ORACLE_SCORES"
    assert 0 <= outcome.report["results"][0]["robust_accuracy"] <= 1


def test_a_classifier_is_taken_as_it_is(tmp_path: Path) -> None:
    x, y = _data()
    clf = Classifier(_net(), input_shape=SHAPE)
    outcome = brittle.evaluate(clf, (x, y), out=tmp_path, eps=0.1, progress=False)
    assert outcome.report["model"]["name"] == "Sequential"


def test_class_names_given_for_the_model_are_checked_against_named_data(tmp_path: Path) -> None:
    x, y = _data()
    named = TensorSource(x, y, classes=["cat", "dog", "ship"])
    with pytest.raises(InputError, match="another order"):
        brittle.evaluate(
            _net(), named, out=tmp_path, eps=0.1, classes=["dog", "cat", "ship"], progress=False
        )


def test_a_python_evaluation_is_kept_for_resume_by_python(tmp_path: Path) -> None:
    x, y = _data()
    brittle.evaluate(_net(), (x, y), out=tmp_path, attacks="pgd:steps=3", eps=0.1, progress=False)
    spec = saved_spec(tmp_path)
    assert spec.attacks[0].params == {"steps": 3}
    assert spec.model.spec.startswith("<python")


def test_a_model_with_more_classes_than_the_data_is_reported(tmp_path: Path) -> None:
    x, y = _data()
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))  # 5 outputs, the data hold 3 classes
    outcome = brittle.evaluate(
        wide, TensorSource(x, y, classes=["a", "b", "c"]), out=tmp_path, eps=0.3, progress=False
    )
    assert (tmp_path / "report.html").is_file()
    assert outcome.report["results"][0]["n"] == N
