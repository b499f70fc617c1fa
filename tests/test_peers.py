"""Differential tests against torchattacks, Foolbox and ART on one small trained LeNet.

Each test gives brittle and a peer the same model, the same images and the same parameters,
and checks a property of brittle's output: identical to the peer where the algorithms are the
same (FGSM), at least as strong where brittle adds early stopping (BIM, PGD), no larger
perturbations where both minimise (DeepFool, C&W). Success is always re-checked by running
the model on the returned images; the peers' own flags are never used.

The last group are traps the peers fall into. Each is a test of brittle's behaviour; where it
is cheap the peer is run too and what it did is recorded (``record_property``), without
asserting on the peer.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle.threat import Norm
from helpers import make_run

pytestmark = pytest.mark.slow

torchattacks = pytest.importorskip("torchattacks")
foolbox = pytest.importorskip("foolbox")
art_classification = pytest.importorskip("art.estimators.classification")
art_evasion = pytest.importorskip("art.attacks.evasion")


def brittle_attack(module: str, name: str) -> Any:
    """A brittle attack class, or a skip naming what is missing."""
    try:
        return getattr(importlib.import_module(f"brittle.attacks.{module}"), name)
    except (ImportError, AttributeError) as err:
        pytest.skip(f"brittle.attacks.{module}.{name} is not importable yet: {err}")


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def model(small_lenet: Any) -> nn.Module:
    return small_lenet.module.eval()


@pytest.fixture(scope="module")
def clf(small_lenet: Any) -> Any:
    return small_lenet.classifier


@pytest.fixture(scope="module")
def batch(mnist_data: Any, model: nn.Module) -> tuple[Tensor, Tensor]:
    """The first 200 test images and labels (some misclassified: they are part of the test)."""
    return mnist_data.x_test[:200].clone(), mnist_data.y_test[:200].clone()


@pytest.fixture(scope="module")
def fmodel(model: nn.Module) -> Any:
    return foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device="cpu")


@pytest.fixture(scope="module")
def art_clf(model: nn.Module) -> Any:
    return art_classification.PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def predict(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def successes(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> Tensor:
    """Correctly classified before, misclassified after: judged by the model alone."""
    return (predict(model, x) == y) & (predict(model, x_adv) != y)


def l2(x: Tensor, x_adv: Tensor) -> Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


def differing_fraction(a: Tensor, b: Tensor, tol: float = 1e-6) -> float:
    return float(((a - b).abs() > tol).float().mean())


# ------------------------------------------------------------------------------ FGSM
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_fgsm_identical_to_foolbox(model, clf, batch, fmodel, eps):
    """Both sum the loss over the batch before differentiating: the same images, bit for bit."""
    from brittle.attacks.fgsm import FGSM

    x, y = batch
    ours = FGSM(eps)(clf, x, y).x_adv
    _, theirs, _ = foolbox.attacks.LinfFastGradientAttack()(fmodel, x, y, epsilons=eps)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_fgsm_matches_torchattacks_and_art(model, clf, batch, art_clf, eps):
    """torchattacks and ART average the loss over the batch: the gradient is scaled by 1/N and
    its sign can differ only where it is almost zero. At most one pixel in 10,000."""
    from brittle.attacks.fgsm import FGSM

    x, y = batch
    ours = FGSM(eps)(clf, x, y).x_adv
    ta = torchattacks.FGSM(model, eps=eps)(x.clone(), y.clone())
    art = art_evasion.FastGradientMethod(art_clf, eps=eps, batch_size=len(x)).generate(
        x.numpy(), y.numpy()
    )
    assert differing_fraction(ours, ta) <= 1e-4
    assert differing_fraction(ours, torch.from_numpy(art)) <= 1e-4


# ------------------------------------------------------------------------------ BIM / PGD
EPSILONS = [0.05, 0.1, 0.15, 0.2]


def test_bim_at_least_as_strong_as_torchattacks_and_foolbox(model, clf, batch, fmodel):
    """Same steps, step size and (clean) start: brittle stops a sample once it is fooled, the
    peers keep stepping and may step back out; brittle fools at least as many, at every eps."""
    BIM = brittle_attack("iterative", "BIM")
    x, y = batch
    steps = 10
    for eps in EPSILONS:
        alpha = eps / 8
        ours = successes(model, x, y, BIM(eps, steps=steps, step_size=alpha)(clf, x, y).x_adv)
        ta = torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)(x.clone(), y.clone())
        _, fb, _ = foolbox.attacks.LinfBasicIterativeAttack(abs_stepsize=alpha, steps=steps)(
            fmodel, x, y, epsilons=eps
        )
        n = int(ours.sum())
        assert n >= int(successes(model, x, y, ta).sum()), f"eps={eps}"
        assert n >= int(successes(model, x, y, fb).sum()), f"eps={eps}"


class SameStart(foolbox.attacks.LinfPGD):
    """Foolbox's Linf PGD from given starting points (``start``) instead of its own draw."""

    start: Tensor

    def get_random_start(self, x0: Any, epsilon: float) -> Any:
        return type(x0)(self.start)  # an eagerpy tensor like x0


def test_pgd_at_least_as_strong_as_torchattacks_and_foolbox(model, clf, batch, fmodel):
    """Same steps, step size and starting points. brittle draws each sample's random start
    from its own stream (seed, sample id), so Foolbox is handed those very starts (its
    ``get_random_start``); torchattacks draws its start inside the call, so it is compared
    without random start (both then start at x)."""
    PGD = brittle_attack("iterative", "PGD")
    random_start = brittle_attack("iterative", "random_start")
    x, y = batch
    steps = 20
    for eps in EPSILONS:
        alpha = eps / 8
        attack = PGD(eps, steps=steps, step_size=alpha, random_start=True, seed=0)
        ours = successes(model, x, y, attack(clf, x, y).x_adv)
        run = make_run(attack, clf, x, y, torch.full((len(x),), eps))
        given = SameStart(abs_stepsize=alpha, steps=steps, random_start=True)
        given.start = random_start(run, torch.arange(len(x)), Norm.LINF, 0)
        _, fb, _ = given(fmodel, x, y, epsilons=eps)
        assert int(ours.sum()) >= int(successes(model, x, y, fb).sum()), f"eps={eps}"
        plain = PGD(eps, steps=steps, step_size=alpha, random_start=False)
        mine = int(successes(model, x, y, plain(clf, x, y).x_adv).sum())
        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(
            x.clone(), y.clone()
        )
        assert mine >= int(successes(model, x, y, ta).sum()), f"eps={eps}"


# ------------------------------------------------------------------------------ minimal attacks
def test_deepfool_no_worse_than_foolbox(model, clf, batch, fmodel):
    """Same steps, overshoot and candidate classes: brittle fools at least as many images,
    with a median L2 (over the images both fool) within 1% of Foolbox's."""
    DeepFool = brittle_attack("deepfool", "DeepFool")
    x, y = batch[0][:60], batch[1][:60]
    ours = DeepFool(norm="l2", steps=50, overshoot=0.02, candidates=10)(clf, x, y).x_adv
    _, fb, _ = foolbox.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)(
        fmodel, x, y, epsilons=None
    )
    s_ours, s_fb = successes(model, x, y, ours), successes(model, x, y, fb)
    assert int(s_ours.sum()) >= int(s_fb.sum())
    both = s_ours & s_fb
    assert int(both.sum()) > 0
    assert float(l2(x, ours)[both].median()) <= 1.01 * float(l2(x, fb)[both].median())


def foolbox_sentinels(x: Tensor, x_adv: Tensor) -> Tensor:
    """Foolbox's C&W starts its best images at zeros: an all-black result means 'not found'
    (the model may still misclassify a black image; that is no adversarial example of x)."""
    return (x_adv.flatten(1).abs().amax(1) == 0) & (x.flatten(1).abs().amax(1) > 0)


@pytest.mark.parametrize("warm_start", [True, False])
def test_cw_no_worse_than_foolbox(model, clf, batch, fmodel, warm_start):
    """Same Adam steps, binary steps, learning rate, initial constant and abort-early: brittle
    fools at least as many images, with a median L2 (over the images both fool) within 1% of
    Foolbox's, warm-started or restarting from x each round as in the paper. Foolbox's
    all-black 'not found' images are failures, not successes."""
    CW = brittle_attack("cw", "CarliniWagnerL2")
    x, y = batch[0][:40], batch[1][:40]
    settings = {"steps": 40, "binary_steps": 4, "lr": 0.1, "initial_const": 0.1}
    attack = CW(**settings, confidence=0.0, abort_early=True, warm_start=warm_start)
    ours = attack(clf, x, y).x_adv
    _, fb, _ = foolbox.attacks.L2CarliniWagnerAttack(
        binary_search_steps=settings["binary_steps"],
        steps=settings["steps"],
        stepsize=settings["lr"],
        confidence=0.0,
        initial_const=settings["initial_const"],
        abort_early=True,
    )(fmodel, x, y, epsilons=None)
    s_ours = successes(model, x, y, ours)
    s_fb = successes(model, x, y, fb) & ~foolbox_sentinels(x, fb)
    assert int(s_ours.sum()) >= int(s_fb.sum())
    both = s_ours & s_fb
    assert int(both.sum()) > 0
    assert float(l2(x, ours)[both].median()) <= 1.01 * float(l2(x, fb)[both].median())


# ------------------------------------------------------------------------------ traps
def test_failed_minimal_attack_returns_input_unchanged(model, clf, batch, fmodel, record_property):
    """A minimal attack that fails returns the sample itself with success False (L2 = 0).
    Foolbox's C&W starts its 'best' images at zeros and returns an all-black image instead."""
    CW = brittle_attack("cw", "CarliniWagnerL2")
    x, y = batch[0][:40], batch[1][:40]
    # a budget far too small to fool most samples: one round, 5 steps, a tiny constant
    settings = {"steps": 5, "binary_steps": 1, "lr": 0.01, "initial_const": 1e-3}
    result = CW(**settings)(clf, x, y)
    correct = predict(model, x) == y
    failed = correct & ~result.success
    assert int(failed.sum()) > 0, "the budget was meant to make some samples fail"
    assert torch.equal(result.x_adv[failed], x[failed])
    assert bool((result.l2[failed] == 0).all())
    assert torch.equal(predict(model, result.x_adv[failed]), y[failed])
    # whatever succeeded is really misclassified
    assert bool((predict(model, result.x_adv[result.success]) != y[result.success]).all())

    _, fb, _ = foolbox.attacks.L2CarliniWagnerAttack(
        binary_search_steps=1, steps=5, stepsize=0.01, initial_const=1e-3
    )(fmodel, x, y, epsilons=None)
    black = correct & foolbox_sentinels(x, fb)
    record_property("foolbox_cw_returned_all_black", int(black.sum()))
    record_property(
        "foolbox_cw_all_black_counted_as_success_by_the_model",
        int((black & (predict(model, fb) != y)).sum()),
    )


def test_failed_deepfool_returns_input_unchanged(model, clf, batch):
    """DeepFool with a cap eps too small for most samples: those fail and come back as is."""
    DeepFool = brittle_attack("deepfool", "DeepFool")
    x, y = batch[0][:60], batch[1][:60]
    result = DeepFool(norm="l2", steps=50, eps=0.5)(clf, x, y)
    correct = predict(model, x) == y
    failed = correct & ~result.success
    assert int(failed.sum()) > 0
    assert torch.equal(result.x_adv[failed], x[failed])
    assert bool((result.l2 <= 0.5 + 1e-5).all())


def test_deepfool_results_flip_the_label(model, clf, batch, record_property):
    """The overshoot multiplies the total perturbation and each point is checked with it
    applied: every returned image is misclassified, whatever the batch it is evaluated in.
    torchattacks applies the overshoot per step to one image at a time; many of its results sit
    on the decision boundary and are classified correctly when re-evaluated in a batch."""
    DeepFool = brittle_attack("deepfool", "DeepFool")
    x, y = batch[0][:100], batch[1][:100]
    result = DeepFool(norm="l2", steps=50, overshoot=0.02, candidates=10)(clf, x, y)
    correct = predict(model, x) == y
    assert bool(result.success[correct].all())  # every correctly classified image is fooled
    fooled = result.x_adv[correct]
    labels = y[correct]
    in_batch = predict(model, fooled)
    alone = torch.cat([predict(model, img[None]) for img in fooled])
    reversed_batch = predict(model, fooled.flip(0)).flip(0)
    for pred in (in_batch, alone, reversed_batch):
        assert bool((pred != labels).all())

    few = slice(0, 8)  # torchattacks' DeepFool runs one image at a time: keep it short
    ta = torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x[few].clone(), y[few].clone())
    ta_correct = correct[few]
    ta_fooled = (predict(model, ta) != y[few]) & ta_correct
    record_property("torchattacks_deepfool_correct", int(ta_correct.sum()))
    record_property("torchattacks_deepfool_fooled_in_batch", int(ta_fooled.sum()))


def test_cw_reaches_a_working_constant_from_a_small_start(
    model, clf, batch, art_clf, record_property
):
    """From c = 0.01, five binary steps reach a working constant: while a sample fails, c
    grows tenfold (0.01, 0.1, 1, 10, 100), so every image that one round at c = 100 fools is
    fooled too. ART doubles c instead (0.01 to 0.16 in five steps) and leaves images unfooled."""
    CW = brittle_attack("cw", "CarliniWagnerL2")
    x, y = batch[0][:50], batch[1][:50]
    adam = {"steps": 100, "lr": 0.1}
    searched = CW(**adam, binary_steps=5, initial_const=0.01)(clf, x, y)
    direct = CW(**adam, binary_steps=1, initial_const=100.0)(clf, x, y)
    correct = predict(model, x) == y
    fooled = successes(model, x, y, searched.x_adv)
    assert bool((fooled | ~successes(model, x, y, direct.x_adv)).all())
    assert float(fooled.sum()) >= 0.95 * float(correct.sum())

    few = slice(0, 10)
    art = art_evasion.CarliniL2Method(
        art_clf,
        learning_rate=0.1,
        binary_search_steps=5,
        max_iter=10,
        initial_const=0.01,
        batch_size=10,
        verbose=False,
    ).generate(x[few].numpy(), y[few].numpy())
    art_fooled = successes(model, x[few], y[few], torch.from_numpy(art))
    record_property("art_cw_correct", int(correct[few].sum()))
    record_property("art_cw_fooled", int(art_fooled.sum()))


def mifgsm_reference(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    alpha: float,
    mu: float,
    accumulate: str,
) -> tuple[Tensor, Tensor]:
    """MI-FGSM written out (Dong et al. 2018, Algorithm 1), without early stopping.

    ``accumulate``: "l1" adds grad / ||grad||_1 to the momentum (the paper), "sign" adds
    sign(grad) (what a library that normalises before its optimiser does), "raw" adds grad.
    Returns the final iterates and whether each sample was fooled at some iterate.
    """
    x_k, g = x.clone(), torch.zeros_like(x)
    fooled = torch.zeros(len(x), dtype=torch.bool)
    for _ in range(steps):
        x_k.requires_grad_(True)
        logits = model(x_k)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_k)
        fooled |= logits.argmax(1) != y
        if accumulate == "l1":
            grad = grad / grad.flatten(1).abs().sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
        elif accumulate == "sign":
            grad = grad.sign()
        g = mu * g + grad
        x_k = torch.min(torch.max(x_k.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_k.detach(), fooled


def test_mifgsm_accumulates_the_l1_normalised_gradient(model, clf, batch, fmodel, record_property):
    """brittle's iterates equal the paper's update (momentum of grad / ||grad||_1), and not
    the momentum of the signs or of the raw gradients, on every sample it never stops early.
    Foolbox's Linf MI-FGSM accumulates the signs."""
    MIFGSM = brittle_attack("mifgsm", "MIFGSM")
    x, y = batch
    eps, steps, alpha, mu = 0.1, 10, 0.01, 1.0
    ours = MIFGSM(eps, steps=steps, step_size=alpha, decay=mu)(clf, x, y).x_adv
    refs = {
        k: mifgsm_reference(model, x, y, eps, steps, alpha, mu, k) for k in ("l1", "sign", "raw")
    }
    never_fooled = ~refs["l1"][1]  # brittle stops a sample at the first iterate that fools it
    assert int(never_fooled.sum()) >= 20
    assert torch.allclose(ours[never_fooled], refs["l1"][0][never_fooled], atol=1e-6)
    for other in ("sign", "raw"):  # the test tells the three rules apart
        assert not torch.allclose(ours[never_fooled], refs[other][0][never_fooled], atol=1e-6)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, fb, _ = foolbox.attacks.LinfMomentumIterativeFastGradientMethod(
            momentum=mu, abs_stepsize=alpha, steps=steps
        )(fmodel, x, y, epsilons=eps)
    same_as_sign = torch.allclose(fb[never_fooled], refs["sign"][0][never_fooled], atol=1e-6)
    record_property("foolbox_mifgsm_accumulates_signs", bool(same_as_sign))
