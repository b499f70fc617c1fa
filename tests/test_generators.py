"""Generators (brittle.generators): the VAE, its training, safe checkpoints, smoothness
estimates checked against a linear generator whose Lipschitz constant is known, the
quality figures and ``brittle generator train``."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import brittle.generators.checkpoint as generator_checkpoint
import brittle.tasks.generator as generator_task
from brittle import Classifier
from brittle.cli import main
from brittle.data import load_dataset
from brittle.errors import CheckpointError, InputError, ModelOutputError
from brittle.generators import (
    GENERATORS,
    VAE,
    Generator,
    build_generator,
    confident_share,
    elbo_loss,
    estimate_lipschitz,
    jacobian_spectral_norm,
    lipschitz_ascent,
    load_generator,
    modulus_of_continuity,
    pairwise_lipschitz,
    sample_grid,
    save_generator,
    train_generator,
)
from brittle.zoo import build_model, load_checkpoint, save_checkpoint
from brittle.zoo.rng import seeded

pytestmark = pytest.mark.usefixtures("one_thread")

SINGULAR = (3.0, 2.0, 1.5, 1.0, 0.5, 0.25)
"""The singular values of the linear generator's matrix: sigma_max = 3, a clear gap to 2."""


class LinearGenerator(Generator):
    """``g(z) = A z + b`` with ``A = U diag(SINGULAR) V^T``: ``L = sigma_max(A)`` exactly."""

    arch = "linear"

    def __init__(self, seed: int = 0) -> None:
        d, shape = len(SINGULAR), (1, 4, 8)
        super().__init__(d, shape)
        draws = torch.Generator().manual_seed(seed)
        u, _ = torch.linalg.qr(torch.randn(32, d, generator=draws))
        v, _ = torch.linalg.qr(torch.randn(d, d, generator=draws))
        self.register_buffer("a", u @ torch.diag(torch.tensor(SINGULAR)) @ v.T)
        self.register_buffer("b", torch.rand(32, generator=draws))

    def forward(self, z: Tensor) -> Tensor:
        return (z @ self.a.T + self.b).view(-1, *self.output_shape)


@pytest.fixture(scope="module")
def digits() -> Tensor:
    """scikit-learn's 8x8 digits (training split), in [0, 1]."""
    return load_dataset("digits", "train").x


def _tiny_vae(seed: int = 0) -> VAE:
    gen = build_generator("vae", 4, (1, 8, 8), seed=seed, hidden=[32])
    assert isinstance(gen, VAE)
    return gen


def _trained(x: Tensor, seed: int = 0, epochs: int = 4) -> VAE:
    gen = _tiny_vae()
    train_generator(gen, x, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, progress=False)
    return gen


# ------------------------------------------------------------------ the VAE
@pytest.mark.parametrize("d", [8, 16, 100])
def test_the_decoder_maps_latents_to_images_in_the_unit_box(d: int) -> None:
    gen = build_generator("vae", d, (1, 28, 28), seed=0)
    z = 5 * torch.randn(7, d)  # far from the prior's bulk too
    with torch.no_grad():
        x = gen(z)
    assert x.shape == (7, 1, 28, 28) and gen.latent_dim == d
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    mu, logvar = gen.encode(x)
    assert mu.shape == logvar.shape == (7, d)
    drawn, images = gen.sample(5, torch.Generator().manual_seed(3))
    again, _ = gen.sample(5, torch.Generator().manual_seed(3))
    assert drawn.shape == (5, d) and images.shape == (5, 1, 28, 28) and not images.requires_grad
    assert torch.equal(drawn, again)
    assert GENERATORS["vae"] is VAE and gen.arch == "vae"


def test_bad_generator_settings_are_refused() -> None:
    for kwargs, message in (
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1"),
        ({"output_shape": (28, 28)}, "three positive integers"),
        ({"hidden": []}, "at least one width"),
        ({"width": 3}, "does not take width"),
    ):
        settings: dict[str, Any] = {"latent_dim": 8, "output_shape": (1, 28, 28), **kwargs}
        with pytest.raises(InputError, match=message):
            build_generator("vae", **settings)
    with pytest.raises(InputError, match="unknown generator 'gan'"):
        build_generator("gan", 8, (1, 28, 28))


# ------------------------------------------------------------------ training
def test_training_lowers_the_negative_elbo_and_is_deterministic(digits: Tensor) -> None:
    def held_out_loss(gen: VAE) -> float:
        with seeded(5), torch.no_grad():
            return float(elbo_loss(gen, digits)[0])

    before = held_out_loss(_tiny_vae())
    gen = _trained(digits)
    after = held_out_loss(gen)
    assert after < 0.8 * before, (before, after)
    twin, other = _trained(digits), _trained(digits, seed=1)
    assert not gen.training  # left in eval mode
    for name, weights in gen.state_dict().items():
        assert torch.equal(weights, twin.state_dict()[name]), name
    assert not torch.equal(gen.decoder[1].weight, other.decoder[1].weight)


def test_training_refuses_bad_inputs_before_any_work(digits: Tensor) -> None:
    gen = _tiny_vae()
    start = {k: v.clone() for k, v in gen.state_dict().items()}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"x": digits * 16}, r"in \[0, 1\]"),
        ({"x": digits.view(-1, 64)}, r"output shape \(1, 8, 8\)"),
        ({"x": (digits * 16).long()}, "floating point"),
    ]
    for change, message in cases:
        settings: dict[str, Any] = {"x": digits, "epochs": 1, **change}
        with pytest.raises(InputError, match=message):
            train_generator(gen, progress=False, **settings)
    with pytest.raises(InputError, match="trains a VAE"):
        train_generator(LinearGenerator(), torch.rand(4, 1, 4, 8), epochs=1)
    assert all(torch.equal(v, start[k]) for k, v in gen.state_dict().items())


def test_a_loss_that_turns_nan_is_refused_with_advice(digits: Tensor) -> None:
    gen = _tiny_vae()
    with torch.no_grad():
        gen.mu.weight[0, 0] = float("nan")
    with pytest.raises(ModelOutputError, match=r"diverged.*lower the learning rate"):
        train_generator(gen, digits, epochs=1, progress=False)


# ------------------------------------------------------------------ checkpoints
def test_a_generator_checkpoint_round_trips_bit_for_bit(tmp_path: Path, digits: Tensor) -> None:
    gen = _trained(digits, epochs=1)
    path = save_generator(tmp_path / "sub" / "vae.pt", gen, {"dataset": "digits", "epochs": 1})
    loaded, meta = load_generator(path)
    z = torch.randn(9, 4)
    assert isinstance(loaded, VAE) and not loaded.training
    assert torch.equal(loaded(z), gen(z))
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.encode(digits), gen.encode(digits), strict=True)
    )
    assert meta["kind"] == "generator" and meta["arch"] == "vae"
    assert meta["latent_dim"] == 4 and meta["output_shape"] == [1, 8, 8]
    assert meta["arch_kwargs"] == {"hidden": [32]} and meta["dataset"] == "digits"
    assert meta["brittle_version"] and meta["created"]
    with pytest.raises(CheckpointError, match="saves a generator"):
        save_generator(tmp_path / "x.pt", gen, {"kind": "classifier"})
    with pytest.raises(CheckpointError, match="meta\\['latent_dim'\\] = 5"):
        save_generator(tmp_path / "x.pt", gen, {"latent_dim": 5})


def test_each_kind_of_checkpoint_is_refused_by_the_other_loader(tmp_path: Path) -> None:
    classifier = save_checkpoint(tmp_path / "lenet.pt", build_model("softmax", (1, 8, 8), 10), {})
    with pytest.raises(CheckpointError, match="is a classifier checkpoint") as err:
        load_generator(classifier)
    assert "brittle generator train" in str(err.value) and "load_checkpoint" in str(err.value)
    # a classifier saved before checkpoints recorded their kind
    payload = torch.load(classifier, weights_only=True)
    meta = json.loads(payload["meta_json"])
    del meta["kind"]
    torch.save({**payload, "meta_json": json.dumps(meta)}, classifier)
    assert load_checkpoint(classifier)[1].get("kind") is None
    with pytest.raises(CheckpointError, match="is a classifier checkpoint"):
        load_generator(classifier)

    generator = save_generator(tmp_path / "vae.pt", _tiny_vae(), {})
    with pytest.raises(CheckpointError, match="is a generator checkpoint") as err:
        load_checkpoint(generator)
    assert "load_generator" in str(err.value) and "latent_dim 4" in str(err.value)


class Payload:
    """A custom class: pickled into a checkpoint, it must be refused on load."""


def test_unsafe_or_forged_generator_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged metadata are refused before a generator is built anywhere but on the meta
    device (shapes without storage: 10^8 latent dimensions would take gigabytes)."""
    devices: list[str] = []
    real_build = generator_checkpoint.build_generator

    def recording_build(*args: Any, **kwargs: Any) -> Any:
        devices.append(torch.get_default_device().type)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(generator_checkpoint, "build_generator", recording_build)
    genuine = save_generator(tmp_path / "vae.pt", _tiny_vae(), {})
    payload = torch.load(genuine, weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**payload, "extra": Payload()}, evil)
    with pytest.raises(CheckpointError, match="arbitrary code") as err:
        load_generator(evil)
    assert "save_generator" in str(err.value)
    torch.save(_tiny_vae().state_dict(), evil)
    with pytest.raises(CheckpointError, match="raw state_dict") as err:
        load_generator(evil)
    assert "build_generator" in str(err.value)
    meta = json.loads(payload["meta_json"])
    devices.clear()  # save_generator checked its shapes on the meta device too
    for change, message in (
        ({"latent_dim": 10**8}, "do not fit"),
        ({"arch_kwargs": {"hidden": [10**9]}}, "do not fit"),
        ({"arch": "gan"}, "unknown architecture 'gan'"),
        ({"kind": "detector"}, "unknown kind 'detector'"),
    ):
        torch.save({**payload, "meta_json": json.dumps({**meta, **change})}, evil)
        with pytest.raises(CheckpointError, match=message):
            load_generator(evil)
    assert devices == ["meta", "meta"]  # the two forged sizes, each checked on the meta device


# ------------------------------------------------------------------ smoothness
def test_every_lipschitz_method_finds_the_largest_singular_value_of_a_linear_map() -> None:
    gen = LinearGenerator()
    sigma = torch.linalg.matrix_norm(gen.a, 2).item()
    assert sigma == pytest.approx(SINGULAR[0], rel=1e-5)
    pairs = pairwise_lipschitz(gen, 500, scales=(0.01, 1.0, 10.0), seed=1)
    assert pairs.ratios.shape == (3, 500)
    assert pairs.max <= sigma * (1 + 1e-4) and pairs.max > 0.8 * sigma
    z = torch.randn(20, gen.latent_dim)
    norms = jacobian_spectral_norm(gen, z, iters=30)
    assert norms.shape == (20,)
    assert torch.allclose(norms, torch.full((20,), sigma), rtol=0.01)
    ascent = lipschitz_ascent(gen, n_starts=3, steps=5)
    assert ascent.sigma.shape == (3,) and ascent.z.shape == (3, gen.latent_dim)
    assert float(ascent.sigma.max()) == pytest.approx(sigma, rel=0.01)
    found = estimate_lipschitz(gen, n_pairs=200, n_points=50, n_starts=2, steps=5)
    assert found.lipschitz == pytest.approx(sigma, rel=0.01)
    assert found.lipschitz <= sigma * (1 + 1e-4)
    assert found.lipschitz == max(found.pairwise, found.jacobian, found.ascent)
    report = json.loads(json.dumps(found.as_json()))
    assert "power iterations" in report["method"] and report["pairwise_ratios"]["max"] > 0


def test_sigma_max_times_delta_is_an_upper_envelope_of_the_modulus_of_a_linear_map() -> None:
    gen = LinearGenerator(seed=2)
    sigma = torch.linalg.matrix_norm(gen.a, 2).item()
    deltas, omega = modulus_of_continuity(gen, [0.01, 0.1, 0.5, 1, 2, 5], n_pairs=400, seed=3)
    assert deltas.tolist() == pytest.approx([0.01, 0.1, 0.5, 1, 2, 5])
    assert bool((omega <= sigma * deltas * (1 + 1e-4)).all())
    assert bool((omega >= 0.8 * sigma * deltas).all())  # and the samples come close to it


def test_the_power_iteration_matches_the_full_jacobian_of_a_vae() -> None:
    gen = build_generator("vae", 5, (1, 6, 6), seed=0, hidden=[16]).eval()
    z = torch.randn(4, 5)
    exact = torch.stack(
        [
            torch.linalg.matrix_norm(
                torch.autograd.functional.jacobian(gen, row[None]).reshape(36, 5), 2
            )
            for row in z
        ]
    )
    assert torch.allclose(jacobian_spectral_norm(gen, z, iters=100), exact, rtol=1e-3)
    starts = torch.randn(3, 5, generator=torch.Generator().manual_seed(7))
    ascent = lipschitz_ascent(gen, steps=10, starts=starts)
    assert ascent.z.shape == (3, 5)  # one walk per start, never ending below it
    assert bool((ascent.sigma >= 0.999 * jacobian_spectral_norm(gen, starts, iters=100)).all())


def test_smoothness_settings_are_checked() -> None:
    gen = LinearGenerator()
    with pytest.raises(InputError, match="scales must be a non-empty list"):
        pairwise_lipschitz(gen, 10, scales=(0.1, -1.0))
    with pytest.raises(InputError, match="n_pairs must be an integer >= 1"):
        modulus_of_continuity(gen, [0.1], n_pairs=0)
    with pytest.raises(InputError, match=r"z must be a non-empty batch \(N, 6\)"):
        jacobian_spectral_norm(gen, torch.zeros(3, 7))
    with pytest.raises(InputError, match="step_size"):
        lipschitz_ascent(gen, step_size=0.0)


# ------------------------------------------------------------------ quality
class ConstantLogits(nn.Module):
    """Logits ``[margin, 0]`` whatever the image: softmax confidence sigmoid(margin)."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([torch.full((len(x),), self.margin), torch.zeros(len(x))], dim=1)


def test_the_confident_share_counts_samples_above_the_threshold() -> None:
    gen = _tiny_vae()
    for margin, share in ((5.0, 1.0), (1.0, 0.0)):  # sigmoid(5) = 0.993, sigmoid(1) = 0.73
        clf = Classifier(ConstantLogits(margin), input_shape=(1, 8, 8))
        assert confident_share(clf, gen, 250, threshold=0.9, batch_size=100) == share
    wrong = Classifier(ConstantLogits(5.0), input_shape=(1, 28, 28))
    with pytest.raises(InputError, match=r"shape \(1, 8, 8\) but the classifier takes"):
        confident_share(wrong, gen, 10)


def test_the_sample_grid_is_a_png() -> None:
    _, x = _tiny_vae().sample(23)
    assert sample_grid(x, nrow=5, title="samples").startswith(b"\x89PNG")
    with pytest.raises(InputError, match="1 or 3 channels"):
        sample_grid(torch.rand(4, 2, 8, 8))


# ------------------------------------------------------------------ the command line
def _invoke(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_generator_train_writes_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "vae4.pt"
    code, stdout, stderr = _invoke(
        "generator", "train", "--dataset", "digits", "--epochs", "1", "--latent-dim", "4",
        "--n-train", "500", "--out", path,
    )  # fmt: skip
    assert code == 0, stderr
    assert "final loss" in stdout and f"checkpoint: {path}" in stdout
    gen, meta = load_generator(path)
    assert gen.latent_dim == 4 and gen.output_shape == (1, 8, 8)
    assert meta["dataset"] == "digits" and meta["epochs"] == 1 and meta["n_train"] == 500
    assert meta["seed"] == 0 and meta["final_loss"] > 0
    assert set(meta["final_parts"]) == {"reconstruction", "kl"}


def test_generator_train_refuses_a_bad_latent_dimension_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("data were loaded")

    monkeypatch.setattr(generator_task, "load_dataset", no_work)
    path = tmp_path / "never" / "vae.pt"
    code, stdout, stderr = _invoke("generator", "train", "--latent-dim", "0", "--out", path)
    assert code == 2 and stdout == ""
    assert stderr == "error: --latent-dim must be an integer >= 1, got 0\n"
    assert not path.parent.exists()
    code, _, stderr = _invoke("generator")
    assert code == 2 and "needs a command: train" in stderr
