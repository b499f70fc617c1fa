"""Defences (brittle.defenses): the objectives' formulas, their effect, and bad input."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tests.helpers import Hyperplane
from torch import Tensor, nn

from brittle import Classifier, tasks
from brittle.attacks import FGSM, PGD, CarliniWagnerL2
from brittle.checks.masking import VANISHING_SHARE, gradient_masking_check
from brittle.data import load_dataset
from brittle.defenses import (
    AttackTraining,
    DefenseOptions,
    EnsembleTraining,
    FGSMTraining,
    NoiseTraining,
    PGDTraining,
    TemperatureCrossEntropy,
    build_objective,
    soft_labels,
)
from brittle.errors import CheckpointError, InputError
from brittle.zoo import build_model, train_model

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN_TASK = importlib.import_module("brittle.tasks.train")  # the module, not tasks.train

EPS = 0.2


@cache
def _digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    return train.x, train.y, test.x, test.y


def _lenet() -> nn.Module:
    return build_model("lenet", (1, 8, 8), 10, seed=0, channels=(16,), hidden=(64,))


@cache
def _trained(defense: str) -> nn.Module:
    """A small LeNet on the 8x8 digits, plain or with a defence (fixed seeds)."""
    x, y, _, _ = _digits()
    model = _lenet()
    objective = None if defense == "none" else build_objective(DefenseOptions(defense, eps=EPS))
    train_model(model, x, y, epochs=6, lr=3e-3, seed=0, progress=False, objective=objective)
    return model.eval()


def _robust_accuracy(model: nn.Module, attack: FGSM | PGD) -> float:
    _, _, x, y = _digits()
    result = attack(Classifier(model), x, y)
    return float((result.pred_adv == y).float().mean())


@pytest.mark.parametrize("defense", ["fgsm", "pgd"])
def test_adversarial_training_raises_robust_accuracy(defense: str) -> None:
    plain, hardened = _trained("none"), _trained(defense)
    for attack in (FGSM(EPS), PGD(EPS, steps=20)):
        before, after = _robust_accuracy(plain, attack), _robust_accuracy(hardened, attack)
        print(f"{defense}-trained, {attack.name}: robust accuracy {before:.3f} -> {after:.3f}")
        assert after >= before + 0.15


def test_noise_training_does_not_harden_like_adversarial_training() -> None:
    noise = _robust_accuracy(_trained("noise-sign"), FGSM(EPS))
    adversarial = _robust_accuracy(_trained("fgsm"), FGSM(EPS))
    assert noise + 0.1 < adversarial


def _logistic(d: int = 16) -> tuple[Hyperplane, Tensor, Tensor]:
    torch.manual_seed(0)
    model = Hyperplane(torch.randn(d, dtype=torch.float64), 0.3)
    x = torch.rand(64, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (64,))
    return model, x, y


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_fgsm_objective_equals_goodfellow_closed_form_on_logistic_regression(alpha: float) -> None:
    """Section 5: with labels s = 2y - 1 in {-1, 1} and z = w.x + b, sign(grad_x J) = -s sign(w),
    so J(x') = zeta(-s z + eps ||w||_1) (no active box), and
    J~ = alpha zeta(-s z) + (1 - alpha) zeta(-s z + eps ||w||_1), zeta the softplus."""
    model, x, y = _logistic()
    eps = 0.1
    objective = FGSMTraining(eps, alpha, bounds=(-float("inf"), float("inf")))
    values = objective.backward(model, x, y)
    grad_w, grad_b = model.w.grad.clone(), model.b.grad.clone()
    model.zero_grad()

    s = (2 * y - 1).double()
    w = model.w.detach().requires_grad_(True)
    b = model.b.detach().requires_grad_(True)
    z = x.flatten(1) @ w + b
    clean = F.softplus(-s * z).mean()
    adv = F.softplus(-s * z + eps * w.abs().sum()).mean()
    total = alpha * clean + (1 - alpha) * adv
    total.backward()
    assert torch.allclose(values, torch.stack([total, clean, adv]).detach(), atol=1e-12)
    assert torch.allclose(grad_w, w.grad, atol=1e-12)
    assert torch.allclose(grad_b, b.grad, atol=1e-12)


def test_fgsm_objective_crafts_what_the_fgsm_attack_crafts() -> None:
    """Without dropout the clean pass's gradient is FGSM's: the same x' as the attack."""
    x, y, _, _ = _digits()
    model = _trained("none")
    seen: list[Tensor] = []

    class Recording(FGSMTraining):
        def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
            out = super().perturb(model, x, y, grad)
            seen.append(out.clamp(*self.bounds))
            return out

    Recording(EPS).backward(model, x[:100], y[:100])
    model.zero_grad()
    expected = FGSM(EPS)(Classifier(model), x[:100], y[:100]).x_adv
    assert torch.equal(seen[0], expected)


def test_attack_training_gradient_is_the_mixture_at_the_attack_output() -> None:
    """The attack adds nothing to the parameters' gradient: it equals that of
    alpha J(x) + (1 - alpha) J(x') at the attack's own output (deterministic PGD)."""
    x, y, _, _ = _digits()
    model = _trained("none")
    attack = PGD(EPS, steps=5, random_start=False, early_stop=False)
    AttackTraining(attack, alpha=0.3).backward(model, x[:64], y[:64])
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x_adv = attack(Classifier(model), x[:64], y[:64]).x_adv
    (0.3 * F.cross_entropy(model(x[:64]), y[:64])).backward()
    (0.7 * F.cross_entropy(model(x_adv), y[:64])).backward()
    for a, p in zip(got, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)
    model.zero_grad()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_training_crafts_what_the_pgd_attack_crafts(norm: str) -> None:
    """Without dropout or batchnorm, train and eval mode agree: PGDTraining's ascent from x
    equals PGD's (no random start, no early stop), inside the ball and the box."""
    x, y, _, _ = _digits()
    model = _trained("none")
    eps = EPS if norm == "linf" else 1.5
    seen: list[Tensor] = []

    class Recording(PGDTraining):
        def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
            seen.append(super().perturb(model, x, y, grad))
            return seen[-1]

    Recording(eps, steps=5, norm=norm, random_start=False).backward(model, x[:64], y[:64])
    model.zero_grad()
    attack = PGD(eps, steps=5, norm=norm, random_start=False, early_stop=False)
    expected = attack(Classifier(model), x[:64], y[:64]).x_adv
    assert torch.allclose(seen[0], expected, atol=1e-6)
    assert all(p.grad is None or not bool(p.grad.any()) for p in model.parameters())


def test_pgd_training_defaults_to_madrys_objective() -> None:
    """alpha = 0: the loss is J at the adversarial examples alone; the clean loss reported is
    an estimate on the first rows, which adds nothing to the gradient."""
    x, y, _, _ = _digits()
    model = _trained("none")
    objective = build_objective(DefenseOptions("pgd", eps=0.1, steps=2))
    assert isinstance(objective, PGDTraining) and objective.alpha == 0.0
    assert objective.describe()["steps"] == 2
    torch.manual_seed(0)
    values = objective.backward(model, x[:64], y[:64])
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(0)
    x_adv = objective.perturb(model, x[:64], y[:64], None).clamp(0, 1)
    F.cross_entropy(model(x_adv), y[:64]).backward()
    for a, p in zip(got, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)
    model.zero_grad()
    assert values[0] == values[2]


def test_pgd_without_early_stop_goes_further_than_with_it() -> None:
    """Adversarial training's PGD runs every step: the loss it reaches is never below the
    early-stopped one's, and it is higher for samples that met the goal early."""
    _, _, x, y = _digits()
    clf = Classifier(_trained("none"))
    stopped = PGD(EPS, steps=10, random_start=False)(clf, x[:200], y[:200])
    full = PGD(EPS, steps=10, random_start=False, early_stop=False)(clf, x[:200], y[:200])
    loss = [
        F.cross_entropy(clf.predict_logits(r.x_adv), y[:200], reduction="none")
        for r in (stopped, full)
    ]
    assert float(loss[1].mean()) > float(loss[0].mean())
    assert (full.linf <= EPS + 1e-6).all()


def test_jsma_training_crafts_within_upsilon_toward_random_targets() -> None:
    """Papernot et al.'s suggested defence: JSMA examples of the current weights, each
    changing at most Upsilon of the features, mixed into the loss."""
    x, y, _, _ = _digits()
    model = _trained("none")
    seen: list[Tensor] = []

    class Recording(AttackTraining):
        def perturb(self, model: nn.Module, x: Tensor, y: Tensor, grad: Tensor | None) -> Tensor:
            seen.append(super().perturb(model, x, y, grad))
            return seen[-1]

    objective = build_objective(DefenseOptions("jsma", eps=0.1))
    assert isinstance(objective, AttackTraining) and objective.target == "random"
    recording = Recording(objective.attack, target="random", name="jsma")
    values = recording.backward(model, x[:32], y[:32])
    model.zero_grad()
    changed = (seen[0] != x[:32]).flatten(1).sum(1)
    assert int(changed.max()) <= int(0.1 * 64) and float(changed.double().mean()) > 1
    assert torch.isfinite(values).all() and recording.describe()["name"] == "jsma"


@pytest.mark.parametrize("kind", ["sign", "uniform"])
def test_noise_stays_within_eps_and_sign_noise_has_size_eps(kind: str) -> None:
    x = 0.3 + 0.4 * torch.rand(500, 1, 8, 8)  # eps 0.2 never reaches the box
    noise = NoiseTraining(EPS, kind).perturb(nn.Identity(), x, torch.zeros(500), None) - x
    assert float(noise.abs().max()) <= EPS + 1e-6
    if kind == "sign":
        assert torch.allclose(noise.abs(), torch.full_like(noise, EPS))
        assert abs(float((noise > 0).float().mean()) - 0.5) < 0.02
    else:
        assert abs(float(noise.mean())) < 0.01


def test_ensemble_training_keeps_static_models_and_crafts_on_them() -> None:
    x, y, _, _ = _digits()
    static = _trained("noise-uniform")
    static.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in static.parameters()]
    objective = EnsembleTraining(EPS, [static])
    model = _lenet()
    train_model(model, x[:256], y[:256], epochs=1, seed=0, progress=False, objective=objective)
    assert all(torch.equal(a, p) for a, p in zip(before, static.parameters(), strict=True))
    assert all(p.grad is None for p in static.parameters())


def test_soft_labels_train_as_hard_labels_when_one_hot() -> None:
    x, y, _, _ = _digits()
    a, b = _lenet(), _lenet()
    train_model(a, x[:200], y[:200], epochs=1, seed=3, progress=False)
    train_model(b, x[:200], F.one_hot(y[:200], 10).float(), epochs=1, seed=3, progress=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_soft_labels_are_the_tempered_softmax() -> None:
    x, _, _, _ = _digits()
    teacher = _trained("none")
    labels = soft_labels(teacher, x[:50], 10.0)
    with torch.no_grad():
        expected = (teacher(x[:50]) / 10).softmax(1)
    assert torch.allclose(labels, expected)
    assert torch.allclose(labels.sum(1), torch.ones(50))


@cache
def _distilled(temperature: float = 100.0) -> nn.Module:
    """A LeNet distilled at T on the digits: a teacher trained at T, its soft labels, the
    student trained on them at T (deployed at T = 1)."""
    x, y, _, _ = _digits()
    objective = TemperatureCrossEntropy(temperature)
    teacher = _lenet()
    train_model(teacher, x, y, epochs=10, lr=1e-2, seed=0, progress=False, objective=objective)
    student = _lenet()
    labels = soft_labels(teacher, x, temperature)
    train_model(student, x, labels, epochs=10, lr=1e-2, seed=0, progress=False, objective=objective)
    return student.eval()


def test_distilled_student_has_vanishing_input_gradients_at_t1() -> None:
    """At T = 1 the student's logits are about T times a plain model's: the softmax
    saturates and grad_x J shrinks by orders of magnitude (Carlini & Wagner 2016)."""
    _, _, xt, yt = _digits()

    def gradient_norms(model: nn.Module) -> Tensor:
        inputs = xt.clone().requires_grad_(True)
        loss = F.cross_entropy(model.eval()(inputs), yt, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs)
        return grad.flatten(1).norm(dim=1)

    plain, distilled = gradient_norms(_trained("none")), gradient_norms(_distilled())
    print(f"median |grad_x J|: plain {plain.median():.3g}, distilled {distilled.median():.3g}")
    assert float(distilled.median()) < 1e-3 * float(plain.median())


def test_the_masking_check_flags_distillation_and_cw_still_breaks_it() -> None:
    _, _, xt, yt = _digits()
    clf = Classifier(_distilled())
    check = gradient_masking_check(clf, xt[:200], yt[:200], EPS)
    print(check.as_json())
    assert check.masked and check.vanishing_share >= VANISHING_SHARE
    assert check.robust_pgd_margin < check.robust_fgsm
    assert not gradient_masking_check(Classifier(_trained("none")), xt[:200], yt[:200], EPS).masked
    result = CarliniWagnerL2(steps=50, binary_steps=5)(clf, xt[:100], yt[:100])
    correct = result.pred_clean == yt[:100]
    assert float(result.success[correct].double().mean()) > 0.9


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DefenseOptions("fgsm", alpha=1.5), "alpha must be in"),
        (DefenseOptions("fgsm", alpha=-0.1), "alpha must be in"),
        (DefenseOptions("fgsm", eps=-0.1), "eps must be >= 0"),
        (DefenseOptions("pgd", eps=float("nan")), "eps must be a finite"),
        (DefenseOptions("distill", temperature=0.0), "temperature T must be"),
        (DefenseOptions("distill", temperature=-5.0), "temperature T must be"),
        (DefenseOptions("distill"), "needs --temperature"),
        (DefenseOptions("ensemble"), "needs --static"),
        (DefenseOptions("fgsm", temperature=10.0), "--temperature does not apply"),
        (DefenseOptions("pgd", steps=0), "--steps must be an integer >= 1"),
        (DefenseOptions("shield"), "unknown defence"),
    ],
)
def test_bad_defense_options_are_refused_before_training(
    options: DefenseOptions, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TRAIN_TASK, "load_dataset", _no_work)
    with pytest.raises(InputError, match=message):
        tasks.train(dataset="digits", defense=options, out=tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("data were loaded before the options were checked")


def test_missing_teacher_is_refused_before_any_data_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TRAIN_TASK, "load_dataset", _no_work)
    options = DefenseOptions("distill", temperature=100.0, teacher=str(tmp_path / "none.pt"))
    with pytest.raises(CheckpointError, match="does not exist"):
        tasks.train(dataset="digits", defense=options, out=tmp_path / "m.pt", progress=False)


@pytest.mark.parametrize("mismatch", ["shape", "classes"])
def test_ensemble_static_model_of_another_shape_or_class_count_is_refused(
    mismatch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brittle.zoo import save_checkpoint

    shape, classes = ((1, 10, 10), 10) if mismatch == "shape" else ((1, 8, 8), 5)
    path = save_checkpoint(tmp_path / "static.pt", build_model("softmax", shape, classes), {})
    monkeypatch.setattr(TRAIN_TASK, "train_model", _no_work)
    options = DefenseOptions("ensemble", static=(str(path),))
    with pytest.raises(InputError, match="give models trained on the same data"):
        tasks.train(dataset="digits", defense=options, out=tmp_path / "m.pt", progress=False)


def test_ensemble_objective_checks_static_modules_before_training() -> None:
    x, y, _, _ = _digits()
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(InputError, match="3,\\) outputs per input but the model being trained"):
        train_model(
            _lenet(), x[:32], y[:32], progress=False, objective=EnsembleTraining(EPS, [wrong])
        )


def test_bad_soft_labels_are_refused() -> None:
    x, _, _, _ = _digits()
    with pytest.raises(InputError, match="summing to 1"):
        train_model(_lenet(), x[:10], torch.full((10, 10), 0.5), progress=False)
    with pytest.raises(InputError, match="columns but the model has 10"):
        train_model(_lenet(), x[:10], torch.full((10, 4), 0.25), progress=False)


# ------------------------------------------------------------------ the task and its record
def test_a_defended_checkpoint_records_its_defence(tmp_path: Path) -> None:
    options = DefenseOptions("fgsm", eps=0.1, alpha=0.7)
    outcome = tasks.train(
        dataset="digits", epochs=1, defense=options, out=tmp_path / "m.pt", progress=False
    )
    assert outcome.meta["defense"] == {"name": "fgsm", "eps": 0.1, "alpha": 0.7}
    assert set(outcome.history.parts) == {"clean", "adv"}
    assert len(outcome.history.parts["adv"]) == 1


def test_distill_without_teacher_trains_and_keeps_one(tmp_path: Path) -> None:
    options = DefenseOptions("distill", temperature=20.0)
    outcome = tasks.train(
        dataset="digits", epochs=1, defense=options, out=tmp_path / "s.pt", progress=False
    )
    teacher = tmp_path / "s.teacher.pt"
    assert teacher.is_file()
    assert outcome.meta["defense"] == {
        "name": "distill",
        "temperature": 20.0,
        "teacher": str(teacher),
    }
