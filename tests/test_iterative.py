"""BIM, PGD (Kurakin 2016; Madry 2018) and MI-FGSM (Dong 2018) on a small MLP trained on
sklearn's digits, and MI-FGSM's update rule by hand on a linear model.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import BIM, FGSM, MIFGSM, PGD, Attack
from brittle.attacks.iterative import random_start, sparse_l1_direction
from brittle.errors import InputError, ThreatModelError
from brittle.perturbation import norm_of, within_budget
from brittle.threat import Norm
from helpers import make_run

EPS = {"linf": 0.1, "l2": 0.6, "l1": 3.0}
"""Budgets on 8x8 digits in [0, 1] at which attacks succeed on some samples, not all."""


pytestmark = pytest.mark.usefixtures("one_thread")


class Counting(nn.Module):
    """Wraps a module and counts the rows of every forward pass that builds a graph."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows_with_grad = 0

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            self.rows_with_grad += x.shape[0]
        out: Tensor = self.inner(x)
        return out


@pytest.fixture(scope="module")
def digits() -> tuple[Counting, Classifier, Tensor, Tensor]:
    """An MLP trained on 1,500 digits; 150 held-out digits it classifies correctly."""
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(net(x[:1500]), y[:1500]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        right = net(x[1500:]).argmax(1) == y[1500:]
    assert float(right.float().mean()) > 0.9
    module = Counting(net)
    clf = Classifier(module, bounds=(0.0, 1.0))
    clf.check_gradients(x[:8])  # once per shape, before any count is compared
    return module, clf, x[1500:][right][:150], y[1500:][right][:150]


def make_attacks(norm: str) -> list[Attack]:
    eps = EPS[norm]
    attacks: list[Attack] = [
        BIM(eps, norm=norm),
        PGD(eps, steps=20, norm=norm),
        PGD(eps, steps=10, norm=norm, restarts=2, step_size=eps / 4),
    ]
    if norm == "linf":
        attacks.append(MIFGSM(eps))
    return attacks


# ---------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_raw_iterates_inside_box_and_budget(digits, norm: str) -> None:
    """What _run returns (before the base class projects it) already lies in box and ball."""
    _, clf, x, y = digits
    eps = torch.full((len(x),), EPS[norm])
    eps[::3] = EPS[norm] / 4  # per-sample budgets
    for attack in make_attacks(norm):
        run = make_run(attack, clf, x, y, eps)
        with clf.evaluation():
            x_adv = attack._run(run)
        assert x_adv.shape == x.shape
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
        assert bool(within_budget(x_adv - x, Norm(norm), eps).all()), attack
        result = attack(clf, x, y, eps=eps)
        assert bool(within_budget(result.x_adv - x, Norm(norm), eps).all())
        assert 0 < result.success_rate() < 1, attack  # the budgets are neither trivial nor hopeless


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_random_start_inside_ball(norm: str) -> None:
    """Random starts lie in B_eps(x) ∩ box and fill the ball (not only its surface)."""
    x = torch.full((500, 1, 4, 4), 0.5)
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    run = make_run(
        PGD(0.3, norm=norm), clf, x, torch.zeros(500, dtype=torch.long), torch.full((500,), 0.3)
    )
    start = random_start(run, torch.arange(500), Norm(norm), restart=0)
    size = norm_of(start - x, Norm(norm))
    assert bool((size <= 0.3 + 1e-6).all())
    assert float(start.min()) >= 0.0 and float(start.max()) <= 1.0
    assert float(size.min()) > 0.02 and float(size.std()) > 0.005  # spread inside the ball
    # uniform in the ball: P(||u|| <= eps/2) = 2^-16 in 16 dimensions, not ~1/2
    assert float((size < 0.15).float().mean()) < 0.01


def test_sparse_l1_direction_moves_top_coordinates_inside_box() -> None:
    """Unit L1 norm, on the ceil(1% * d) largest movable |g|: none pushes past a bound."""
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(4, 1, 20, 20, generator=g)
    x = torch.rand(4, 1, 20, 20, generator=g).round()  # every pixel on a bound
    e = sparse_l1_direction(grad, x, (0.0, 1.0))
    flat = e.flatten(1)
    assert torch.allclose(flat.abs().sum(1), torch.ones(4))
    assert bool(((flat != 0).sum(1) == 4).all())
    assert not bool(((x.flatten(1) == 1) & (flat > 0)).any())
    assert not bool(((x.flatten(1) == 0) & (flat < 0)).any())
    movable = grad.flatten(1) * torch.where(x.flatten(1) == 1, -1.0, 1.0) > 0
    best = (grad.flatten(1).abs() * movable).topk(4, dim=1).values[:, -1:]
    assert bool((grad.flatten(1).abs()[flat != 0].view(4, -1) >= best).all())


# ---------------------------------------------------------------------------- strength
def test_bim_success_never_falls_as_eps_grows(digits) -> None:
    _, clf, x, y = digits
    rates = [BIM(eps)(clf, x, y).success_rate() for eps in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)]
    assert rates == sorted(rates), rates
    assert rates[0] < 0.2 and rates[-1] == 1.0


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_pgd_at_least_as_strong_as_fgsm(digits, norm: str) -> None:
    _, clf, x, y = digits
    for eps in (EPS[norm] / 2, EPS[norm]):
        fgsm = FGSM(eps, norm=norm)(clf, x, y).success_rate()
        pgd = PGD(eps, norm=norm)(clf, x, y).success_rate()
        assert pgd >= fgsm, (eps, pgd, fgsm)
    assert pgd > 0.2


def test_restarts_never_worse_per_sample(digits) -> None:
    """The first of 3 restarts is the single run (same seed), and the best of 3 keeps it;
    the other restarts run on the samples still standing, from other starts."""
    _, clf, x, y = digits
    one = PGD(0.07, steps=10)(clf, x, y)
    three = PGD(0.07, steps=10, restarts=3)(clf, x, y)
    assert bool((three.success | ~one.success).all())
    assert torch.equal(three.x_adv[one.success], one.x_adv[one.success])
    assert int(three.success.sum()) >= int(one.success.sum())
    assert bool((three.queries[~one.success] > one.queries[~one.success]).all())

    def loss(x_adv: Tensor) -> Tensor:
        return F.cross_entropy(clf.predict_logits(x_adv), y, reduction="none")

    failed = ~three.success
    assert bool((loss(three.x_adv)[failed] >= loss(one.x_adv)[failed] - 1e-4).all())
    # restarts only rerun the samples not yet fooled: at most one pass of 10 for the others
    assert bool((three.gradients[one.success] == one.gradients[one.success]).all())
    assert bool((three.gradients <= 30).all())


@pytest.mark.parametrize(
    "attack",
    [BIM(0.3, targeted=True), PGD(0.3, targeted=True), MIFGSM(0.3, targeted=True)],
    ids=["BIM", "PGD", "MIFGSM"],
)
def test_targeted_reaches_targets(digits, attack: Attack) -> None:
    _, clf, x, y = digits
    t = (y + 1 + torch.arange(len(y)) % 9) % 10
    result = attack(clf, x, y, target=t)
    assert result.success_rate() > 0.9
    assert torch.equal(result.pred_adv[result.success], t[result.success])


# ---------------------------------------------------------------------------- cost
@pytest.mark.parametrize(
    "attack", [BIM(0.1), PGD(0.1, steps=20), MIFGSM(0.1)], ids=["BIM", "PGD", "MIFGSM"]
)
def test_early_stopping_counts_only_active_samples(digits, attack: PGD | MIFGSM) -> None:
    module, clf, x, y = digits
    before = module.rows_with_grad
    result = attack(clf, x, y)
    assert module.rows_with_grad - before == int(result.gradients.sum())
    assert bool((result.gradients >= 1).all()) and bool((result.gradients <= attack.steps).all())
    # a failure ran every step; successes stopped once their iterate met the goal
    assert bool((result.gradients[~result.success] == attack.steps).all())
    assert bool((result.gradients[result.success] < attack.steps).any())
    assert float(result.gradients[result.success].float().mean()) < attack.steps


def test_misclassified_sample_costs_one_gradient(digits) -> None:
    _, clf, x, y = digits
    wrong = (y + 1) % 10  # labels the model disagrees with: already "fooled" at x_0 = x
    result = BIM(0.1)(clf, x[:10], wrong[:10])
    assert bool((result.gradients == 1).all()) and bool(result.success.all())
    assert torch.equal(result.x_adv, x[:10])


# ---------------------------------------------------------------------------- MI-FGSM
def test_mifgsm_two_steps_by_hand() -> None:
    """g_1 = grad_0/||grad_0||_1, g_2 = mu g_1 + grad_1/||grad_1||_1, x_k+1 = clip(x_k + a sign g)."""
    g = torch.Generator().manual_seed(3)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        lin[1].weight.copy_(torch.randn(3, 4, generator=g) * 3)
        lin[1].bias.copy_(torch.tensor([12.0, 0.0, 0.0]))  # class 0 wins throughout
    n = 64
    x = torch.rand(n, 1, 2, 2, generator=g)
    y = torch.zeros(n, dtype=torch.long)
    eps, alpha, mu = 0.3, 0.2, 0.8
    w = lin[1].weight.detach().double()
    b = lin[1].bias.detach().double()

    def grad(z: Tensor) -> Tensor:
        p = torch.softmax(z @ w.T + b, dim=1)
        return (p - F.one_hot(y, 3).double()) @ w  # grad_z CE(Wz + b, y)

    def clip(z: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(z, x0 - eps), x0 + eps).clamp(0, 1)

    def by_hand(accumulate) -> Tensor:
        z, m = x0, torch.zeros_like(x0)
        for _ in range(2):
            m = accumulate(m, grad(z))
            z = clip(z + alpha * m.sign())
        return z

    x0 = x.flatten(1).double()
    expected = by_hand(lambda m, d: mu * m + d / d.abs().sum(1, keepdim=True))
    result = MIFGSM(eps, steps=2, step_size=alpha, decay=mu)(Classifier(lin), x, y)
    assert not bool(result.success.any())
    torch.testing.assert_close(result.x_adv.flatten(1).double(), expected, atol=1e-6, rtol=0)
    # the rule is told apart from accumulating signs or raw gradients on these inputs
    for wrong in (lambda m, d: mu * m + d.sign(), lambda m, d: mu * m + d):
        assert not torch.allclose(by_hand(wrong), expected, atol=1e-6)


# ---------------------------------------------------------------------------- parameters
def test_per_sample_eps_is_respected(digits) -> None:
    """A per-sample eps scales each sample's steps and budget as a scalar eps would."""
    _, clf, x, y = digits
    eps = torch.where(torch.arange(len(x)) % 2 == 0, 0.05, 0.2)
    eps[:5] = 0.0
    result = BIM(0.3)(clf, x, y, eps=eps)
    assert bool((result.linf <= eps + 1e-6).all())
    assert torch.equal(result.x_adv[:5], x[:5]) and not bool(result.success[:5].any())
    for value in (0.05, 0.2):
        rows = (eps == value).nonzero().squeeze(1)
        alone = BIM(value)(clf, x[rows], y[rows])
        assert torch.equal(alone.success, result.success[rows])
        torch.testing.assert_close(alone.x_adv, result.x_adv[rows], atol=1e-6, rtol=0)


def test_same_seed_same_result(digits) -> None:
    _, clf, x, y = digits
    a = PGD(0.1, steps=10, seed=7)(clf, x, y)
    b = PGD(0.1, steps=10, seed=7)(clf, x, y)
    c = PGD(0.1, steps=10, seed=8)(clf, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.gradients, b.gradients)
    assert not torch.equal(a.x_adv, c.x_adv)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: BIM(0.1, steps=0), "steps"),
        (lambda: PGD(0.1, steps=2.5), "steps"),
        (lambda: PGD(0.1, step_size=0.0), "step_size"),
        (lambda: BIM(0.1, step_size=-0.1), "step_size"),
        (lambda: PGD(0.1, step_size=float("nan")), "step_size"),
        (lambda: PGD(0.1, restarts=0), "restarts"),
        (lambda: PGD(0.1, restarts=2, random_start=False), "restarts"),
        (lambda: MIFGSM(0.1, steps=0), "steps"),
        (lambda: MIFGSM(0.1, step_size=0), "step_size"),
        (lambda: MIFGSM(0.1, decay=-1.0), "decay"),
    ],
)
def test_invalid_parameters_raise(build, name: str) -> None:
    with pytest.raises(InputError, match=name):
        build()


def test_unsupported_norms_refused() -> None:
    with pytest.raises(ThreatModelError):
        PGD(0.1, norm="l0")
    with pytest.raises(ThreatModelError):
        BIM(0.1, norm="l0")
