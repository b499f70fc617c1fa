"""Threat-driven evaluation: a capability stated without attacks runs the strongest suite it
allows, and a suite whose black-box stage beats its stronger attacks raises that stage's
budget once, saying so."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import brittle
from brittle.cli import main
from brittle.errors import InputError
from brittle.eval.suite import RAISE, SCORE_QUERIES
from brittle.threat import Capability

pytestmark = pytest.mark.usefixtures("one_thread")

N = 24


class Quantised(nn.Module):
    """Rounds its inputs to 4 levels first: the input gradient is exactly zero, so every
    gradient attack fails and only the score-based stage breaks samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(torch.round(x * 3) / 3)
        return out


def _data(model: nn.Module) -> tuple[Tensor, Tensor]:
    x = torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model(x).argmax(1)


@pytest.mark.slow
def test_a_black_box_stage_that_beats_the_gradients_is_raised_once(tmp_path: Path) -> None:
    model = Quantised()
    x, y = _data(model)
    first = brittle.evaluate(model, (x, y), out=tmp_path, suite="standard", eps=0.3, progress=False)
    assert first is not None
    report = first.report
    raised = f"square:max_queries={SCORE_QUERIES * RAISE}"
    assert report["raised"] == {"stage": raised, "max_queries": SCORE_QUERIES * RAISE}
    assert any("once more" in w and raised in w for w in report["warnings"])
    labels = [a["label"] for a in report["attacks"]]
    assert labels[-1] == raised and labels.count(raised) == 1  # once, and last
    # the raised stage attacked only the samples every earlier stage left standing
    rows = report["per_attack"][raised][0]
    earlier = [report["per_attack"][label][0] for label in labels[:-1]]
    assert rows["n"] <= min(r["n"] for r in earlier)
    # a rerun reuses every row, the raised stage's included, and reports the same
    again = brittle.evaluate(model, (x, y), out=tmp_path, suite="standard", eps=0.3, progress=False)
    assert again is not None
    assert again.report["results"] == report["results"]
    assert again.report["raised"] == report["raised"]


def test_listed_attacks_keep_their_budgets(tmp_path: Path) -> None:
    model = Quantised()
    x, y = _data(model)
    outcome = brittle.evaluate(
        model,
        (x, y),
        out=tmp_path,
        attacks=["fgsm", "simba:max_queries=200:norm=linf"],
        eps=0.3,
        progress=False,
    )
    assert outcome is not None
    assert "raised" not in outcome.report
    assert [a["label"] for a in outcome.report["attacks"]] == [
        "fgsm",
        "simba:max_queries=200:norm=linf",
    ]


def test_a_capability_without_attacks_runs_its_suite(tmp_path: Path) -> None:
    model = Quantised()
    x, y = _data(model)
    script = tmp_path / "net.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))\n"
    )
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    weights = tmp_path / "w.pt"
    torch.save(model.net.state_dict(), weights)
    code = main(
        [
            "evaluate",
            "--model",
            f"{script}:make",
            "--weights",
            str(weights),
            "--dataset",
            "npz",
            "--data-dir",
            str(tmp_path / "data.npz"),
            "--capability",
            "oracle_scores",
            "--eps",
            "0.3",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["threat_model"]["capability"] == "ORACLE_SCORES"
    assert [a["label"].split(":")[0] for a in report["attacks"]] == ["square", "simba"]


def test_a_samples_adversary_trains_a_substitute_and_asks_the_model_nothing(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    outcome = brittle.evaluate(
        net, "digits", out=tmp_path, n=40, eps=0.3, capability=Capability.SAMPLES, progress=False
    )
    assert outcome is not None
    report = outcome.report
    assert report["threat_model"]["capability"] == "SAMPLES"
    assert [a["label"].split(":")[0] for a in report["attacks"]] == ["substitute"]
    with closing(sqlite3.connect(outcome.store)) as db:
        (queries,) = db.execute("SELECT max(queries) FROM samples").fetchone()
    assert queries == 0  # no query of the model: the samples alone
    (label,) = report["per_attack"]
    substitute = report["substitutes"][label]
    assert substitute["labels_asked"] == 0 and substitute["rounds"] == 0
    assert 0.0 <= substitute["agreement"] <= 1.0 and substitute["n"] == 40
    assert "Transfer from substitutes" in outcome.paths.html.read_text()


def test_fgsm_is_not_held_against_attacks_without_gradients(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(1)
    outcome = brittle.evaluate(net, (x, y), out=tmp_path, eps=0.2,
                               attacks="simba:max_queries=20:norm=linf", progress=False)  # fmt: skip
    assert outcome is not None
    checks = {c["name"]: c for c in outcome.report["sanity_checks"]}
    assert checks["single_step"]["status"] == "not run"
    assert "no gradient" in checks["single_step"]["message"]


def test_a_samples_suite_on_data_given_by_path_is_refused_saying_what_to_do(
    tmp_path: Path,
) -> None:
    x, y = _data(Quantised())
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    torch.manual_seed(0)
    with pytest.raises(InputError, match="name it with --dataset and no --data-dir"):
        brittle.evaluate(Quantised(), "npz", data_dir=tmp_path / "data.npz", out=tmp_path / "r",
                         eps=0.3, capability=Capability.SAMPLES, progress=False)  # fmt: skip
