"""The model zoo, the training loop and checkpoints (brittle.zoo)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from brittle import Classifier
from brittle.errors import CheckpointError, InputError
from brittle.zoo import (
    ARCHITECTURES,
    accuracy,
    build_model,
    class_means,
    load_checkpoint,
    load_classifier,
    radial_likelihood,
    save_checkpoint,
    train_model,
)


class Payload:
    """A custom class: pickled into a checkpoint, it must be refused on load."""


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.data / 16, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(data.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _classes(arch: str) -> int:
    return 2 if arch == "logistic" else 10


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- zoo
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_arch_gives_logits_and_input_gradients(arch: str, shape: tuple[int, ...]) -> None:
    k = _classes(arch)
    model = build_model(arch, shape, k, seed=0).eval()
    x = torch.rand(5, *shape, requires_grad=True)
    out = model(x)
    assert out.shape == (5, k)
    (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 32, 32), (1, 5, 7)])
def test_lenet_adapts_to_channels_and_sizes(shape: tuple[int, int, int]) -> None:
    model = build_model("lenet", shape, 10, seed=0)
    assert model(torch.rand(3, *shape)).shape == (3, 10)


def test_lenet_refuses_images_too_small_to_pool_twice() -> None:
    with pytest.raises(InputError, match="at least 4x4"):
        build_model("lenet", (1, 3, 3), 10)


def test_bad_build_arguments_are_refused() -> None:
    with pytest.raises(InputError, match="unknown architecture"):
        build_model("resnet", (1, 8, 8), 10)
    with pytest.raises(InputError, match="does not take width"):
        build_model("mlp", (1, 8, 8), 10, width=3)
    with pytest.raises(InputError, match="input_shape"):
        build_model("mlp", (64,), 10)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="num_classes=2"):
        build_model("logistic", (1, 8, 8), 3)


def test_seed_fixes_initialisation_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b = (build_model("mlp", (1, 8, 8), 10, seed=3) for _ in range(2))
    c = build_model("mlp", (1, 8, 8), 10, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in _weights(a).items():
        assert torch.equal(value, _weights(b)[key])
    assert not torch.equal(_weights(a)["net.1.weight"], _weights(c)["net.1.weight"])


def test_logistic_logits_make_softmax_the_sigmoid() -> None:
    model = build_model("logistic", (1, 8, 8), 2, seed=0)
    x = torch.rand(7, 1, 8, 8)
    logits = model(x)
    z = model.linear(x.flatten(1)).squeeze(1)  # its one score per row
    assert torch.equal(logits, torch.stack([torch.zeros(7), z], 1))
    assert torch.allclose(logits.softmax(1)[:, 1], torch.sigmoid(z), atol=1e-6)


def test_rbf_logits_follow_the_radial_formula() -> None:
    means = torch.rand(10, 1, 8, 8)
    model = build_model("rbf", (1, 8, 8), 10, seed=0, init_means=means)
    x = torch.rand(4, 1, 8, 8)
    logits = model(x)
    beta = F.softplus(model.rho)
    expected = torch.stack(
        [-(beta[k] * (x.flatten(1) - means[k].flatten()) ** 2).sum(1) for k in range(10)], 1
    )
    assert torch.allclose(logits, expected, atol=1e-5)
    assert (logits <= 0).all() and (beta >= 0).all()
    # the prototype itself is where its class is most confident: exp(logit) = 1 (up to the
    # rounding of the expanded square the forward pass computes)
    assert torch.allclose(model(means)[range(10), range(10)], torch.zeros(10), atol=1e-6)
    assert "init_means" not in model.arch_kwargs


def test_class_means_are_the_rbf_prototypes_start() -> None:
    x = torch.rand(30, 1, 4, 4)
    y = torch.arange(30) % 3
    means = class_means(x, y, 4)
    for k in range(3):
        assert torch.allclose(means[k], x[y == k].mean(0))
    assert torch.allclose(means[3], x.mean(0))  # no samples: the overall mean


def test_radial_likelihood_is_the_bernoulli_likelihood_of_each_class() -> None:
    """exp(logit_k) is class k's own probability: J = -mean(log p_y + sum_{k != y} log(1 - p_k))."""
    logits = -torch.rand(5, 3) * 3
    y = torch.tensor([0, 1, 2, 1, 0])
    p = logits.exp()
    expected = -(torch.where(F.one_hot(y, 3).bool(), p.log(), (1 - p).log()).sum(1)).mean()
    model = torch.nn.Identity()
    assert torch.allclose(radial_likelihood(model, logits, y), expected, atol=1e-6)


# ---------------------------------------------------------------- training
def test_softmax_learns_digits(digits) -> None:
    xtr, ytr, xte, yte = digits
    model = build_model("softmax", (1, 8, 8), 10, seed=0)
    history = train_model(model, xtr, ytr, epochs=10, lr=1e-2, progress=False)
    assert len(history.loss) == 10 and history.loss[-1] < history.loss[0]
    assert history.seconds > 0
    assert accuracy(model, xte, yte) > 0.9


def test_same_seed_same_weights_after_training(digits) -> None:
    xtr, ytr, _, _ = digits
    runs = []
    for _ in range(2):
        model = build_model("maxout", (1, 8, 8), 10, seed=1, units=16, pieces=2, dropout=0.5)
        train_model(model, xtr[:300], ytr[:300], epochs=2, batch_size=32, seed=5, progress=False)
        runs.append(_weights(model))
    other = build_model("maxout", (1, 8, 8), 10, seed=1, units=16, pieces=2, dropout=0.5)
    train_model(other, xtr[:300], ytr[:300], epochs=2, batch_size=32, seed=6, progress=False)
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key])
    assert any(not torch.equal(runs[0][k], v) for k, v in _weights(other).items())


@pytest.mark.parametrize(
    ("penalty", "norm"),
    [({"l1": 1e-2}, lambda w: w.abs().sum()), ({"weight_decay": 1e-1}, lambda w: w.norm())],
)
def test_l1_and_weight_decay_shrink_weights(digits, penalty, norm) -> None:
    xtr, ytr, _, _ = digits
    sizes = {}
    for name, kwargs in (("none", {}), ("penalised", penalty)):
        model = build_model("softmax", (1, 8, 8), 10, seed=0)
        train_model(model, xtr, ytr, epochs=4, lr=1e-2, progress=False, **kwargs)
        sizes[name] = float(norm(model.linear.weight.detach()))
    assert sizes["penalised"] < 0.8 * sizes["none"]


def test_custom_objective_is_minimised_on_every_batch(digits) -> None:
    xtr, ytr, _, _ = digits
    calls = []

    def objective(model, x, y):
        calls.append(len(x))
        return F.cross_entropy(model(x), y)

    model = build_model("softmax", (1, 8, 8), 10, seed=0)
    train_model(model, xtr[:250], ytr[:250], epochs=3, batch_size=100, objective=objective,
                progress=False)  # fmt: skip
    assert calls == [100, 100, 50] * 3


def test_training_and_accuracy_restore_the_mode(digits) -> None:
    xtr, ytr, _, _ = digits
    model = build_model("mlp", (1, 8, 8), 10, hidden=[16])
    for mode in (True, False):
        model.train(mode)
        train_model(model, xtr[:64], ytr[:64], epochs=1, progress=False)
        assert model.training is mode
        accuracy(model, xtr[:64], ytr[:64])
        assert model.training is mode


def test_training_refuses_bad_data(digits) -> None:
    xtr, ytr, _, _ = digits
    model = build_model("softmax", (1, 8, 8), 10)
    with pytest.raises(InputError, match="labels up to 10"):
        train_model(model, xtr[:10], torch.full((10,), 10), progress=False)
    with pytest.raises(InputError, match=r"shape \(10,\)"):
        train_model(model, xtr[:10], ytr[:9], progress=False)
    with pytest.raises(InputError, match="floating point"):
        train_model(model, (xtr[:10] * 16).long(), ytr[:10], progress=False)
    with pytest.raises(InputError, match="input shape"):
        train_model(model, torch.rand(10, 1, 28, 28), ytr[:10], progress=False)
    with pytest.raises(InputError, match="optimizer"):
        train_model(model, xtr[:10], ytr[:10], optimizer="lbfgs", progress=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------- checkpoints
META = {
    "dataset": "digits",
    "classes": [str(k) for k in range(10)],
    "preprocessing": {"mean": [0.3], "std": [0.4]},
    "bounds": [0.0, 1.0],
    "accuracy": 0.5,
    "seed": 2,
    "epochs": 0,
}


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("mlp", {"hidden": (32, 16)}), ("lenet", {"channels": (4, 8), "hidden": (12,)}),
     ("rbf", {}), ("maxout", {"units": 8, "pieces": 3})],
)  # fmt: skip
def test_checkpoint_round_trip(tmp_path, arch, kwargs) -> None:
    model = build_model(arch, (1, 8, 8), 10, seed=2, **kwargs).eval()
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, META)
    loaded, meta = load_checkpoint(path)
    x = torch.rand(6, 1, 8, 8)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert meta["arch"] == arch and meta["num_classes"] == 10
    assert meta["input_shape"] == [1, 8, 8]
    assert meta["arch_kwargs"] == json.loads(json.dumps(model.arch_kwargs))
    assert {k: meta[k] for k in META} == META
    assert meta["brittle_version"] and meta["created"]

    clf = load_classifier(path)
    assert isinstance(clf, Classifier)
    assert clf.bounds == (0.0, 1.0) and clf.num_classes == 10
    assert clf.preprocessing is not None
    assert clf.preprocessing["mean"] == pytest.approx([0.3])
    assert clf.preprocessing["std"] == pytest.approx([0.4])
    assert torch.allclose(clf.predict_logits(x), model((x - 0.3) / 0.4), atol=1e-6)


def test_pickled_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    model = build_model("softmax", (1, 8, 8), 10)
    meta = json.dumps({"arch": "softmax", "input_shape": [1, 8, 8], "num_classes": 10})
    payload = {"format": "brittle-checkpoint", "version": 1, "meta_json": meta}
    torch.save({**payload, "state_dict": model.state_dict(), "extra": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="pickle") as err:
        load_checkpoint(path)
    assert "arbitrary code" in str(err.value) and "save_checkpoint" in str(err.value)


def test_raw_state_dict_is_refused_with_a_way_to_convert(tmp_path) -> None:
    path = tmp_path / "raw.pt"
    torch.save(build_model("softmax", (1, 8, 8), 10).state_dict(), path)
    with pytest.raises(CheckpointError, match="raw state_dict") as err:
        load_checkpoint(path)
    assert "build_model" in str(err.value) and "save_checkpoint" in str(err.value)


def test_broken_checkpoints_are_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")

    model = build_model("mlp", (1, 8, 8), 10, hidden=[8])
    path = save_checkpoint(tmp_path / "ok.pt", model, {})
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta_json"])
    for change, message in (({"arch": "resnet"}, "unknown architecture"),
                            ({"arch_kwargs": {"hidden": [9]}}, "do not fit")):  # fmt: skip
        torch.save({**payload, "meta_json": json.dumps({**meta, **change})}, path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_save_refuses_metadata_it_could_not_load(tmp_path) -> None:
    model = build_model("mlp", (1, 8, 8), 10, hidden=[8])
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "a.pt", model, {"accuracy": torch.tensor(0.5)})
    with pytest.raises(CheckpointError, match="num_classes"):
        save_checkpoint(tmp_path / "b.pt", model, {"num_classes": 3})
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(CheckpointError, match="lack arch, input_shape, num_classes"):
        save_checkpoint(tmp_path / "c.pt", plain, {})
    with pytest.raises(CheckpointError, match="do not match"):
        save_checkpoint(
            tmp_path / "d.pt", plain, {"arch": "mlp", "input_shape": [1, 8, 8], "num_classes": 10}
        )
    assert not list(tmp_path.iterdir())
