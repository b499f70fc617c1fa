"""The tasks behind the command line (:mod:`brittle.tasks`), on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brittle import Capability, Classifier, Goal, ThreatModel, tasks
from brittle.attacks.iterative import PGD
from brittle.attacks.registry import make_attack
from brittle.data import load_dataset
from brittle.errors import InputError, StorageError, ThreatModelError
from brittle.eval.lock import LOCK_NAME, folder_lock
from brittle.eval.plan import failure_warnings, settle, unbounded
from brittle.eval.runner import run_attack
from brittle.eval.spec import AttackSpec
from brittle.tasks.common import load_victim

pytestmark = pytest.mark.usefixtures("one_thread")

UNBOUNDED = "ran without a budget"
WEAK_CW = {"steps": 1, "binary_steps": 1}
"""A C&W too weak to break the digits model's samples."""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "digits.pt"
    trained = tasks.train(dataset="digits", epochs=1, n_train=400, out=out, progress=False)
    return trained.path


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the attack ran although the threat model refuses it")


def test_the_threat_is_an_input_the_attack_is_checked_against(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["brittle.tasks.attack"], "run_attack", _no_work)
    oracle = ThreatModel(capability=Capability.ORACLE_SCORES, norm="linf", eps=0.3)
    with pytest.raises(ThreatModelError, match="PGD needs capability WHITE_BOX"):
        tasks.attack(model=model, attack="pgd", n=8, threat=oracle, progress=False)
    with pytest.raises(ThreatModelError, match="PGD needs capability WHITE_BOX"):
        tasks.attack(
            model=model, attack="pgd", n=8, capability=Capability.ORACLE_LABELS, progress=False
        )
    small = ThreatModel(norm="linf", eps=0.1)
    with pytest.raises(ThreatModelError, match="over the threat's budget"):
        tasks.attack(model=model, attack="fgsm", eps=0.2, n=8, threat=small, progress=False)
    l2 = ThreatModel(norm="l2", eps=1.0)
    with pytest.raises(ThreatModelError, match="norms"):
        tasks.attack(model=model, attack="mifgsm", n=8, threat=l2, progress=False)


def test_what_the_user_leaves_unstated_comes_from_the_threat(model: Path) -> None:
    threat = ThreatModel(goal=Goal.TARGETED, norm="l2", eps=1.0, bounds=(0.0, 1.0))
    outcome = tasks.attack(
        model=model, attack="pgd", params={"steps": 2}, n=8, threat=threat, progress=False
    )
    info = outcome.summary["attack_params"]
    assert info["params"]["norm"] == "l2" and info["params"]["steps"] == 2
    assert info["target"] == "random" and outcome.result.eps == 1.0
    assert outcome.summary["threat_model"]["description"] == threat.describe()
    assert outcome.result.target is not None


def test_the_stated_threat_takes_the_attacks_defaults(model: Path) -> None:
    outcome = tasks.attack(model=model, attack="deepfool", n=8, progress=False)
    threat = outcome.summary["threat_model"]
    assert threat["norm"] == "l2" and threat["capability"] == "WHITE_BOX"
    assert threat["eps"] == pytest.approx(8.0)  # an unbounded minimal attack: the box's L2 size


def test_results_do_not_depend_on_the_batches(model: Path) -> None:
    runs = [
        tasks.attack(
            model=model,
            attack="pgd",
            params={"steps": 2},
            n=12,
            batch_size=size,
            progress=False,
        )
        for size in (5, 12)
    ]
    assert torch.equal(runs[0].result.x_adv, runs[1].result.x_adv)
    test = load_dataset("digits", "test").subset(12, 0)
    assert torch.equal(runs[0].result.ids, test.ids)  # the samples' ids in their split


def test_run_attack_seeds_each_sample_by_its_id() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    classifier = Classifier(module)
    x = torch.rand(10, 1, 8, 8)
    y = classifier.predict(x)
    attack = PGD(eps=0.3, steps=1)
    small = run_attack(classifier, attack, x, y, batch_size=3, progress=False)
    whole = run_attack(classifier, attack, x, y, batch_size=10, progress=False)
    assert torch.equal(small.x_adv, whole.x_adv)
    other = run_attack(classifier, attack, x, y, ids=torch.arange(10) + 100, progress=False)
    assert not torch.equal(other.x_adv, whole.x_adv)
    with pytest.raises(InputError, match="one id per sample"):
        run_attack(classifier, attack, x, y, ids=torch.arange(3), progress=False)


def test_sample_counts_are_checked(model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--n-train 5000 is more than the 1437 samples"):
        tasks.train(dataset="digits", n_train=5000, out=tmp_path / "m.pt", progress=False)
    with pytest.raises(InputError, match="--n must be an integer >= 1, got 0"):
        tasks.evaluate_model(model=model, out=tmp_path / "e", eps_list=[0.1], n=0)
    assert not (tmp_path / "e").exists()
    whole = tasks.attack(model=model, n=None, progress=False)  # 1,000, or all 360
    assert whole.summary["n"] == 360


def test_the_demo_trains_on_at_most_its_default_size(tmp_path: Path) -> None:
    trained, evaluated = tasks.demo(out=tmp_path, dataset="digits", n=8, progress=False)
    assert trained.meta["n_train"] == 1437  # all of the digits: fewer than DEMO_TRAIN
    assert evaluated.paths.html.is_file() and trained.path == tmp_path / "lenet.pt"


def test_the_adversarial_examples_are_saved_atomically(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "adv.npz"
    outcome = tasks.attack(model=model, n=8, save_path=path, progress=False)
    assert outcome.saved == path and set(np.load(path)) >= {"x", "x_adv", "success", "ids"}
    before = path.read_bytes()

    def half_written(file: object, **arrays: object) -> None:
        file.write(b"PK partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", half_written)
    with pytest.raises(StorageError, match="No space left"):
        tasks.save_adversarial(path, outcome)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["adv.npz"]  # no temporary file left


def test_the_json_summary_is_written_where_asked(model: Path, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "summary.json"
    outcome = tasks.attack(model=model, n=8, json_path=path, progress=False)
    assert outcome.json == path and json.loads(path.read_text())["n"] == 8


def test_a_locked_folder_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert set(holder) == {"pid", "command", "started"}
        with (
            pytest.raises(
                StorageError, match=f"in use by another evaluation \\(pid {holder['pid']}"
            ),
            folder_lock(tmp_path),
        ):
            pass
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == holder  # the refusal kept it
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released and emptied, not removed
    with folder_lock(tmp_path):
        pass


def test_a_budget_binds_below_the_boxs_diameter_in_the_attacks_norm(model: Path) -> None:
    victim = load_victim(model, None, None, "test", 4, 0, None)  # [0, 1]^64
    clf, k = victim.model, victim.features

    def free(attack: object) -> bool:
        return unbounded(attack, clf, k)  # type: ignore[arg-type]

    assert free(make_attack("cw")) and free(make_attack("deepfool"))
    assert free(make_attack("cw", eps=8.0))  # the L2 diameter: all of the box
    assert not free(make_attack("cw", eps=7.9))
    assert not free(make_attack("fgsm"))  # fixed budget: failures are allowed
    assert not free(make_attack("fgsm", minimize=True))  # bisects up to 0.25
    assert free(make_attack("fgsm", minimize=True, high=1.0))  # the Linf diameter
    spec = AttackSpec("fgsm", {"high": 1.0}, minimize=True)
    (spec,), _ = settle((spec,), None, None, Capability.WHITE_BOX, clf, k)
    bisection = spec.build(None)
    [warning] = failure_warnings(spec, bisection, clf, k, success_rate=0.75)
    assert warning.startswith(f"fgsm --minimize {UNBOUNDED} (none, or one the whole input box")
    assert "left 25.0% of the correctly classified samples unbroken" in warning
    assert failure_warnings(spec, bisection, clf, k, success_rate=1.0) == []
    assert failure_warnings(spec, bisection, clf, k, success_rate=float("nan")) == []


def test_a_minimal_attack_that_fails_without_a_budget_is_warned_about(model: Path) -> None:
    weak = tasks.attack(model=model, attack="cw", params=WEAK_CW, n=8, progress=False)
    assert weak.summary["success_rate"] < 1
    [warning] = weak.summary["warnings"]
    assert warning.startswith(f"cw {UNBOUNDED}")
    capped = tasks.attack(model=model, attack="cw", params=WEAK_CW, eps=0.5, n=8, progress=False)
    assert capped.summary["warnings"] == []
    strong = tasks.attack(model=model, attack="deepfool", n=8, progress=False)
    assert strong.summary["success_rate"] == 1 and strong.summary["warnings"] == []


def test_the_report_written_holds_the_unbounded_warning(model: Path, tmp_path: Path) -> None:
    evaluated = tasks.evaluate_model(
        model=model,
        out=tmp_path,
        eps_list=[0.5, 8.0],  # 8: the digits' box in L2, no budget that binds
        attack="cw",
        params=WEAK_CW,
        n=8,
        progress=False,
    )
    warnings = [w for w in evaluated.report["warnings"] if UNBOUNDED in w]
    assert len(warnings) == 1 and warnings[0].startswith(f"cw {UNBOUNDED}")
    assert json.loads(evaluated.paths.json.read_text())["warnings"] == evaluated.report["warnings"]
    assert UNBOUNDED in evaluated.paths.html.read_text()
