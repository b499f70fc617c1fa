"""``brittle bound`` end to end on the 8x8 digits: the figures the issue names, the page
beside the JSON, the bound as Theorem 1 gives it, and bad input refused before any work."""

from __future__ import annotations

import importlib
import json
import math
from functools import cache
from pathlib import Path

import pytest

from brittle import tasks
from brittle.bounds import robustness_upper_bound, transfer_bound
from brittle.cli import ERROR_EXIT, main
from brittle.data import load_dataset
from brittle.errors import CheckpointError, InputError
from brittle.generators import VAE, save_generator, train_generator

pytestmark = pytest.mark.usefixtures("one_thread")

BOUND_TASK = importlib.import_module("brittle.tasks.bound")  # the module, not tasks.bound


@cache
def _checkpoints(root: Path) -> tuple[Path, Path, Path]:
    train = load_dataset("digits", "train")
    gen = VAE(8, train.input_shape)
    train_generator(gen, train.x, epochs=2, progress=False)
    generator = save_generator(root / "vae.pt", gen, {"dataset": "digits", "epochs": 2, "seed": 0})
    model = tasks.train(dataset="digits", epochs=2, out=root / "m.pt", progress=False).path
    second = tasks.train(
        dataset="digits", arch="softmax", epochs=2, out=root / "s.pt", progress=False
    ).path
    return generator, model, second


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _checkpoints(tmp_path_factory.mktemp("bound"))[:2]


@pytest.fixture(scope="module")
def written(files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("out") / "bound.json"
    generator, model = files
    second = generator.with_name("s.pt")
    assert (
        main(
            [
                "bound",
                "--generator",
                str(generator),
                "--model",
                str(model),
                "--json",
                str(out),
                "--n",
                "40",
                "--n-samples",
                "2000",
                "--theorem2",
                "6",
                "--second-model",
                str(second),
            ]
        )
        == 0
    )
    return {"json": json.loads(out.read_text()), "html": out.with_suffix(".html").read_text()}


def test_the_json_holds_what_the_issue_names(written: dict) -> None:
    data = written["json"]
    for key in (
        "class_probabilities",
        "lipschitz",
        "bound_latent_median",
        "bound_input_median",
        "median_r_z",
        "median_r_in",
        "median_r_unc",
    ):
        assert key in data
    for key in (
        "bound_latent_median",
        "bound_input_median",
        "median_r_z",
        "median_r_in",
        "median_r_unc",
    ):
        assert set(data[key]) >= {"raw", "normalised"}
    assert data["lipschitz"] > 0
    assert abs(sum(data["class_probabilities"]["estimate"]) - 1) < 1e-9


def test_the_bounds_are_theorem_1_at_the_median(written: dict) -> None:
    data = written["json"]
    probs = data["class_probabilities"]["estimate"]
    latent = robustness_upper_bound(0.5, probs)
    image = robustness_upper_bound(0.5, probs, data["lipschitz"])
    assert data["bound_latent_median"]["raw"] == pytest.approx(latent)
    assert data["bound_input_median"]["raw"] == pytest.approx(image)
    assert data["bound_input_median"]["raw"] == pytest.approx(data["lipschitz"] * latent)
    scale = data["bound_input_median"]["scale"]
    assert data["bound_input_median"]["normalised"] == pytest.approx(image / scale)
    assert data["checks"]["r_unc <= r_in on every sample"]


def test_the_page_has_the_table_and_the_figures(written: dict) -> None:
    page = written["html"]
    assert "How far from the limit?" in page and page.count("<img") == 5
    assert "r_in (in-distribution)" in page
    assert "Theorem 2: the classifier projected" in page and "Theorem 3: perturbations" in page


def test_the_generator_summary_is_in_the_json(written: dict) -> None:
    """The share of confidently classified samples, and the empirical modulus of continuity
    at 12 distances: positive, and larger at 2 sqrt(d) than at 0.01 (a generator that is not
    constant moves its images further for larger latent moves)."""
    gen = written["json"]["generator"]
    assert 0 <= gen["confident_share"] <= 1 and gen["confidence_threshold"] == 0.9
    modulus = gen["modulus_of_continuity"]
    assert len(modulus["deltas"]) == len(modulus["omega"]) == 12
    assert all(w > 0 for w in modulus["omega"])
    assert modulus["omega"][-1] > modulus["omega"][0]


def test_the_theorems_2_and_3_are_in_the_json(written: dict) -> None:
    """Theorem 2's check on the asked samples; Theorem 3's bound at the corollary's median
    radius in image space (L times sqrt(log(2 pi))), at delta's upper limit."""
    data = written["json"]
    theorem2 = data["theorem2"]
    assert theorem2["n"] == 6 and len(theorem2["ratios"]) == 6
    assert 0 <= theorem2["share_satisfied"] <= 1
    theorem3 = data["theorem3"]
    assert theorem3["eta"] == pytest.approx(data["lipschitz"] * math.sqrt(math.log(2 * math.pi)))
    assert theorem3["delta_samples"] == 2000 and theorem3["n"] == 40
    assert theorem3["bound_conservative"] == pytest.approx(
        transfer_bound(theorem3["eta"], theorem3["delta_upper"], data["lipschitz"])
    )
    assert theorem3["second_model"].endswith("s.pt")


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the analysis ran before the inputs were checked")


def test_bad_input_is_refused_before_any_work(
    files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator, model = files
    monkeypatch.setattr(BOUND_TASK, "analyse", _no_work)
    out = tmp_path / "b.json"
    with pytest.raises(InputError, match="quantile"):
        tasks.bound(generator=generator, model=model, json_path=out, quantile=1.0)
    with pytest.raises(CheckpointError, match="not a generator"):
        tasks.bound(generator=model, model=model, json_path=out)
    with pytest.raises(CheckpointError, match="not a classifier"):
        tasks.bound(generator=generator, model=generator, json_path=out)
    other = tasks.train(
        dataset="mnist5k",
        arch="softmax",
        epochs=1,
        n_train=200,
        out=tmp_path / "s.pt",
        progress=False,
    ).path
    with pytest.raises(InputError):
        tasks.bound(generator=generator, model=other, json_path=out)
    assert (
        main(
            [
                "bound",
                "--generator",
                str(generator),
                "--model",
                str(model),
                "--json",
                str(out),
                "--quantile",
                "0",
            ]
        )
        == ERROR_EXIT
    )
    assert not out.exists()
