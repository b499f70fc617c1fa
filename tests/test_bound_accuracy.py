"""The bound on robust accuracy at each budget on a generator's data, and `evaluate
--generator` reporting it beside the measured robust accuracy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from brittle import Classifier, tasks
from brittle.bounds.accuracy import robust_accuracy_bound
from brittle.bounds.analysis import generated_predictions
from brittle.bounds.theorems import class_probabilities, in_distribution_bound_interval
from brittle.data import load_dataset
from brittle.errors import InputError
from brittle.eval import ResultStore
from brittle.eval.pipeline import BOUND
from brittle.generators import VAE, Generator, load_generator, save_generator, train_generator
from brittle.zoo import load_classifier
from pagecheck import browser_path, check_page
from test_report_browser import assert_claims_match

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = [0.0, 0.5, 2.0, 8.0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bound")
    train = load_dataset("digits", "train")
    gen = VAE(4, train.input_shape)
    train_generator(gen, train.x, epochs=1, progress=False)
    generator = save_generator(folder / "vae.pt", gen, {"dataset": "digits"})
    model = tasks.train(dataset="digits", epochs=1, out=folder / "m.pt", progress=False).path
    return model, generator


def _loaded(files: tuple[Path, Path]) -> tuple[Classifier, Generator]:
    model, generator = files
    return load_classifier(model), load_generator(generator)[0]


def test_the_bound_is_theorem_1_at_each_budget(files: tuple[Path, Path]) -> None:
    classifier, gen = _loaded(files)
    found = robust_accuracy_bound(classifier, gen, EPS, "l2", n_samples=400, lipschitz=2.0)
    bounds = [row["robust_accuracy_bound"] for row in found["rows"]]
    assert [row["eps"] for row in found["rows"]] == EPS
    assert bounds[0] == pytest.approx(1.0)  # at eps 0 nothing is promised
    assert all(0 <= b <= 1 for b in bounds) and bounds == sorted(bounds, reverse=True)
    predictions = generated_predictions(classifier, gen, 400, seed=1).numpy()
    probs = class_probabilities(predictions, 10, 0.95)
    expected = 1 - np.asarray(in_distribution_bound_interval(np.asarray(EPS), probs, 2.0))
    assert bounds == pytest.approx(expected.tolist())
    # Linf robustness is at most L2's (a smaller ball), so the same bound holds; L1's at most
    # sqrt(d) times L2's, so its bound at eps is L2's at eps / sqrt(d)
    linf = robust_accuracy_bound(classifier, gen, EPS, "linf", n_samples=400, lipschitz=2.0)
    assert [r["robust_accuracy_bound"] for r in linf["rows"]] == pytest.approx(bounds)
    l1 = robust_accuracy_bound(
        classifier, gen, [8.0 * math.sqrt(64)], "l1", n_samples=400, lipschitz=2.0
    )
    assert l1["rows"][0]["robust_accuracy_bound"] == pytest.approx(bounds[-1])
    with pytest.raises(InputError, match="not l0"):
        robust_accuracy_bound(classifier, gen, EPS, "l0", n_samples=10, lipschitz=2.0)


def test_evaluate_reports_the_bound_and_keeps_it(files: tuple[Path, Path], tmp_path: Path) -> None:
    model, generator = files
    outcome = tasks.evaluate_model(
        model=model,
        out=tmp_path / "ev",
        dataset="digits",
        eps_list=[0.1, 0.3],
        attack="pgd",
        params={"steps": 5},
        n=16,
        generator=generator,
        progress=False,
    )
    report = json.loads(outcome.paths.json.read_text())
    bound = report["bound"]
    assert [row["eps"] for row in bound["rows"]] == [0.1, 0.3]
    assert bound["generator"]["path"] == str(generator) and bound["norm"] == "linf"
    with ResultStore(outcome.store, create=False) as store:
        assert store.record(BOUND, report["run_key"]) == bound
    if browser_path() is None:
        pytest.skip("no Chromium to open the page in (the JSON is checked above)")
    checks = check_page(outcome.paths.html)
    for check in checks:
        assert check.problems() == [], check.width
        paths = {claim["path"] for claim in check.claims}
        assert {
            "/bound/rows/0/robust_accuracy_bound",
            "/bound/rows/1/robust_accuracy_bound",
        } <= paths
    assert_claims_match(checks, report)
