"""The model-access layer: what an attack is charged is what the model computed, it gets only
what its capability allows, and a query budget stops each sample at it.

What is counted (``brittle.access``): ``result.queries[i]`` is every model evaluation the
attack made for sample ``i`` (a forward pass of one row, with or without gradient);
``result.gradients[i]`` every input gradient (one per loss gradient, ``k`` for a
vector-Jacobian product of ``k`` vectors: one forward pass, ``k`` backward passes). The
attack base's own passes, the clean prediction and the re-check of the returned input, are
counted apart in ``result.verification_queries``. Uncounted anywhere are the model checks of
the door (``check_outputs``, ``check_gradients``: up to 8 rows, once per input shape); the
tests run them once before they count.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brittle import Classifier, Oracle
from brittle.access import ModelAccess, QueryBudgetExceeded
from brittle.attacks import FGSM, PGD, Minimize, SimBA, WorstCase
from brittle.attacks.base import Attack, AttackRun, FixedBudgetAttack
from brittle.attacks.registry import attack_class
from brittle.errors import InputError, ThreatModelError
from brittle.perturbation import within_budget
from brittle.threat import Capability
from foundation import BALL_RADIUS, Counting, fixed, names, owners, separated, small
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def spread() -> tuple[nn.Module, Tensor, Tensor]:
    """The digits softmax model and 24 correctly classified digits more than 2 * BALL_RADIUS
    apart: every point a fixed-budget attack queries is nearest to its own original."""
    clf, x, y = softmax_on_digits()
    idx = separated(x, 24, 2 * BALL_RADIUS + 0.1)
    return clf.module, x[idx], y[idx]


def counted(module: nn.Module, x: Tensor, per_sample: bool = True) -> tuple[Classifier, Counting]:
    """A classifier on a counting copy of ``module``, its door checks already run on ``x``."""
    net = Counting(module, x if per_sample else None)
    clf = Classifier(net)
    clf.check_outputs(x)
    clf.check_gradients(x)
    net.reset()
    return clf, net


CASES: list[tuple[str, Callable[[], Attack], dict[str, object]]] = [
    *[(name, lambda name=name: small(name), {}) for name in names()],
    ("pgd-least-likely", lambda: small("pgd", targeted=True), {"target": "least_likely"}),
    (
        "simba-dct-targeted",
        lambda: small("simba", basis="dct", targeted=True),
        {"target": "random"},
    ),
    ("minimize-fgsm", lambda: Minimize(fixed("fgsm"), tolerance=0.01), {}),
    ("worstcase", lambda: WorstCase([FGSM(0.03), fixed("pgd")]), {}),
]


@pytest.mark.parametrize(("label", "build", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_counts_are_what_the_module_computed(
    spread: tuple[nn.Module, Tensor, Tensor],
    label: str,
    build: Callable[[], Attack],
    kwargs: dict[str, object],
) -> None:
    module, x, y = spread
    attack = build()
    # fixed-budget attacks only query points of the ball: rows can be told apart per sample
    per_sample = attack.requires_budget
    clf, net = counted(module, x, per_sample)
    result = attack(clf, x, y, **kwargs)  # type: ignore[arg-type]
    seen = result.queries + result.verification_queries
    assert int(net.rows.sum()) == int(seen.sum())
    assert int(net.gradient_rows.sum()) == int(result.gradients.sum())
    if per_sample:
        assert torch.equal(net.rows, seen)
        assert torch.equal(net.gradient_rows, result.gradients)
    # the base re-checks every returned input, and predicts the clean ones when the attack
    # did not (or could not: least-likely targets need them first)
    assert bool((result.verification_queries >= 1).all())
    assert bool((result.verification_queries <= 3).all())
    if attack.capability > Capability.SAMPLES:
        assert bool((result.queries >= 1).all())
    else:  # input/label samples only: the attack itself asks the model nothing
        assert int(result.queries.sum()) == 0
    if attack.capability < Capability.WHITE_BOX:
        assert int(result.gradients.sum()) == 0


def test_the_door_checks_probe_eight_rows_once_per_shape() -> None:
    clf0, x, y = softmax_on_digits()
    net = Counting(clf0.module)
    clf = Classifier(net)
    result = FGSM(0.1)(clf, x[:20], y[:20])
    spent = int((result.queries + result.verification_queries).sum())
    # check_outputs forwards 8 rows, check_gradients forwards and differentiates 8 more
    assert int(net.rows.sum()) == spent + 16
    assert int(net.gradient_rows.sum()) == int(result.gradients.sum()) + 8
    net.reset()
    result = FGSM(0.1)(clf, x[20:25], y[20:25])
    assert int(net.rows.sum()) == int((result.queries + result.verification_queries).sum())


# ----------------------------------------------------------------------------- the calls
@pytest.fixture(scope="module")
def linear() -> tuple[Classifier, Tensor, Tensor, Tensor]:
    """A float64 linear model z = W x + b (closed-form derivatives), inputs and labels."""
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(12, 5).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 12, generator=g, dtype=torch.float64))
    x = torch.rand(6, 3, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=g)
    net = nn.Sequential(nn.Flatten(), layer)
    return Classifier(net, num_classes=5), x, y, layer.weight.detach()


def access_to(clf: Classifier | Oracle, n: int, capability: Capability) -> ModelAccess:
    return ModelAccess(clf, capability, n, "Probe")


def test_vjp_of_k_vectors_costs_one_query_and_k_gradients(
    linear: tuple[Classifier, Tensor, Tensor, Tensor],
) -> None:
    clf, x, _, w = linear
    net = Counting(clf.module)
    counting = Classifier(net)
    access = access_to(counting, len(x), Capability.WHITE_BOX)
    g = torch.Generator().manual_seed(1)
    vectors = torch.randn(len(x), 3, 5, generator=g, dtype=torch.float64)
    products, logits = access.vjp(x, vectors)
    assert torch.equal(access.queries, torch.ones(len(x), dtype=torch.long))
    assert torch.equal(access.gradients, torch.full((len(x),), 3))
    assert int(net.rows.sum()) == len(x) and int(net.gradient_rows.sum()) == 3 * len(x)
    # the logits' Jacobian is W: each row is v . W
    assert torch.allclose(products.flatten(2), vectors @ w)
    assert torch.allclose(logits, clf.predict_logits(x))
    # of the probabilities: J = (diag(p) - p p^T) W
    probs, _ = access.vjp(x, vectors, of="probabilities")
    p = logits.softmax(1)[:, None, :]
    expected = (vectors * p - (vectors * p).sum(2, keepdim=True) * p) @ w
    assert torch.allclose(probs.flatten(2), expected)
    assert torch.equal(access.gradients, torch.full((len(x),), 6))


def test_jacobian_rows_are_the_weight_rows(
    linear: tuple[Classifier, Tensor, Tensor, Tensor],
) -> None:
    clf, x, y, w = linear
    access = access_to(clf, len(x), Capability.WHITE_BOX)
    classes = torch.stack([y, (y + 2) % 5], dim=1)
    jac, _ = access.jacobian(x, classes)
    assert jac.shape == (len(x), 2, *x.shape[1:])
    assert torch.allclose(jac.flatten(2), w[classes])
    assert torch.equal(access.gradients, torch.full((len(x),), 2))


def test_loss_gradients_in_closed_form_and_per_sample(
    linear: tuple[Classifier, Tensor, Tensor, Tensor],
) -> None:
    clf, x, y, w = linear
    access = access_to(clf, len(x), Capability.WHITE_BOX)
    grad, logits = access.loss_gradient(x, y)
    p = logits.softmax(1)
    expected = (p - F.one_hot(y, 5).double()) @ w  # d CE / dx = (p - e_y) W
    assert torch.allclose(grad.flatten(1), expected)
    # summed, not averaged: a sample's gradient does not depend on its batch
    alone, _ = access.loss_gradient(x[2:3], y[2:3], idx=torch.tensor([2]))
    assert torch.allclose(alone, grad[2:3])
    negated, _ = access.loss_gradient(x, y, sign=-1.0)
    assert torch.allclose(negated, -grad)
    margin_grad, _ = access.loss_gradient(x, y, "margin")
    other = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
    assert torch.allclose(margin_grad.flatten(1), w[other] - w[y])
    assert torch.equal(access.queries, torch.tensor([3, 3, 4, 3, 3, 3]))
    assert torch.equal(access.gradients, access.queries)
    with pytest.raises(InputError, match="unknown loss"):
        access.loss_gradient(x, y, "hinge")  # type: ignore[arg-type]


def test_each_call_charges_only_its_rows(
    linear: tuple[Classifier, Tensor, Tensor, Tensor],
) -> None:
    clf, x, _, _ = linear
    access = access_to(clf, len(x), Capability.WHITE_BOX)
    rows = torch.tensor([4, 1])
    labels = access.labels(x[rows], rows)
    scores = access.scores(x[rows], rows)
    logits = access.logits(x[rows], rows)
    assert torch.equal(labels, clf.predict(x[rows]))
    assert torch.equal(scores, logits) and torch.allclose(logits, clf.predict_logits(x[rows]))
    assert access.queries.tolist() == [0, 3, 0, 0, 3, 0]
    assert access.gradients.tolist() == [0] * 6
    access.scores(x)
    assert access.queries.tolist() == [1, 4, 1, 1, 4, 1]


# ----------------------------------------------------------------------------- capability
class Asks(FixedBudgetAttack):
    """A test attack that declares ``capability`` and asks the access layer for ``what``."""

    def __init__(self, capability: Capability, what: str) -> None:
        super().__init__(eps=0.1)
        self.capability = capability
        self.what = what

    def _run(self, run: AttackRun) -> Tensor:
        access, x = run.access, run.x
        k = access.num_classes
        calls: dict[str, Callable[[], object]] = {
            "labels": lambda: access.labels(x),
            "scores": lambda: access.scores(x),
            "logits": lambda: access.logits(x),
            "a loss gradient": lambda: access.loss_gradient(x, run.y),
            "a Jacobian": lambda: access.vjp(x, torch.ones(len(x), 1, k, dtype=x.dtype)),
            "jacobian": lambda: access.jacobian(x, run.y[:, None]),
        }
        calls[self.what]()
        return x


class Recorded:
    """The predict function of an Oracle: the digits model, recording every batch it sees."""

    def __init__(self, module: nn.Module, labels: bool) -> None:
        self.module = module
        self.labels = labels
        self.calls = 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        out: Tensor = self.module(x)
        return out.argmax(1) if self.labels else out


def oracle(outputs: str) -> tuple[Oracle, Recorded]:
    clf, _, _ = softmax_on_digits()
    predict = Recorded(clf.module, labels=outputs == "labels")
    return Oracle(predict, 10, (1, 8, 8), outputs=outputs), predict  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capability", "what", "needed"),
    [
        (Capability.ORACLE_LABELS, "scores", Capability.ORACLE_SCORES),
        (Capability.ORACLE_LABELS, "logits", Capability.ORACLE_SCORES),
        (Capability.ORACLE_LABELS, "a loss gradient", Capability.WHITE_BOX),
        (Capability.ORACLE_SCORES, "a loss gradient", Capability.WHITE_BOX),
        (Capability.ORACLE_SCORES, "a Jacobian", Capability.WHITE_BOX),
        (Capability.ORACLE_SCORES, "jacobian", Capability.WHITE_BOX),
    ],
)
def test_an_attack_gets_only_what_it_declares(
    capability: Capability, what: str, needed: Capability
) -> None:
    clf0, x, y = softmax_on_digits()
    clf, net = counted(clf0.module, x[:5], per_sample=False)
    asked = "a Jacobian" if what == "jacobian" else what
    message = (
        f"Asks declares capability {capability.name} but asked for {asked}, which needs "
        f"{needed.name}"
    )
    with pytest.raises(ThreatModelError, match=message):
        Asks(capability, what)(clf, x[:5], y[:5])
    assert int(net.rows.sum()) == 0  # refused before the model was run


@pytest.mark.parametrize(
    ("capability", "what"),
    [(Capability.ORACLE_LABELS, "labels"), (Capability.ORACLE_SCORES, "scores")],
)
def test_what_an_attack_declares_it_gets(capability: Capability, what: str) -> None:
    outputs = "labels" if capability is Capability.ORACLE_LABELS else "scores"
    model, predict = oracle(outputs)
    _, x, y = softmax_on_digits()
    result = Asks(capability, what)(model, x[:5], y[:5])
    assert result.queries.tolist() == [1] * 5
    assert result.gradients.tolist() == [0] * 5
    # one batch for the attack's query, one for the re-check, one for the clean prediction
    assert predict.calls == 3 and result.verification_queries.tolist() == [2] * 5


def test_a_model_that_grants_less_is_refused_at_the_door() -> None:
    model, predict = oracle("labels")
    _, x, y = softmax_on_digits()
    with pytest.raises(
        ThreatModelError, match="Asks needs capability ORACLE_SCORES but the model grants only "
    ):
        Asks(Capability.ORACLE_SCORES, "scores")(model, x[:5], y[:5])
    assert predict.calls == 0


def test_the_access_layer_refuses_what_the_model_does_not_grant() -> None:
    model, predict = oracle("labels")
    _, x, _ = softmax_on_digits()
    access = access_to(model, 5, Capability.ORACLE_SCORES)
    with pytest.raises(
        ThreatModelError,
        match="Probe asked for scores, which needs ORACLE_SCORES, but the model only grants "
        "ORACLE_LABELS",
    ):
        access.scores(x[:5])
    assert predict.calls == 0 and access.queries.tolist() == [0] * 5
    assert torch.equal(access.labels(x[:5]), softmax_on_digits()[0].predict(x[:5]))
    scores_oracle, _ = oracle("scores")
    with pytest.raises(ThreatModelError, match=r"only a brittle\.Classifier has"):
        access_to(scores_oracle, 5, Capability.ORACLE_SCORES).logits(x[:5])


@pytest.mark.parametrize("outputs", ["labels", "scores"])
@pytest.mark.parametrize(
    "name", [n for n in names() if attack_class(n).capability is Capability.WHITE_BOX]
)
def test_white_box_attacks_refuse_an_oracle_before_any_query(outputs: str, name: str) -> None:
    model, predict = oracle(outputs)
    _, x, y = softmax_on_digits()
    with pytest.raises(ThreatModelError, match="needs capability WHITE_BOX but the model grants"):
        small(name)(model, x[:5], y[:5])
    assert predict.calls == 0


def test_pgd_given_an_oracle_is_refused_before_any_query() -> None:
    model, predict = oracle("scores")
    _, x, y = softmax_on_digits()
    with pytest.raises(ThreatModelError, match="PGD needs capability WHITE_BOX"):
        PGD(0.1, steps=3)(model, x[:5], y[:5])
    assert predict.calls == 0


# ----------------------------------------------------------------------------- query budgets
@pytest.fixture(scope="module")
def scored() -> tuple[Oracle, nn.Module, Tensor, Tensor]:
    clf, x, y = softmax_on_digits()
    model = Oracle(lambda v: clf.module(v), 10, (1, 8, 8), outputs="scores")
    return model, clf.module, x[:40], y[:40]


def test_simba_stops_each_sample_at_its_query_budget(
    scored: tuple[Oracle, nn.Module, Tensor, Tensor],
) -> None:
    model, module, x, y = scored
    budget = 30
    attack = SimBA(eps=2.0, max_queries=10_000)
    result = attack(model, x, y, max_queries=budget)
    assert bool((result.queries <= budget).all())
    with torch.no_grad():
        fooled = module(result.x_adv).argmax(1) != y
    assert torch.equal(result.success, fooled)  # still verified
    assert torch.equal(result.exhausted, (result.queries == budget) & ~fooled)
    assert bool(result.exhausted.any()) and bool(result.success.any())  # both happen here
    assert result.verification_queries.tolist() == [1] * len(x)
    assert bool(within_budget(result.x_adv - x, attack.norm, 2.0).all())
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    # the declared parameter and the call's argument are the same budget
    declared = SimBA(eps=2.0, max_queries=budget)(model, x, y)
    assert torch.equal(declared.x_adv, result.x_adv)
    assert torch.equal(declared.queries, result.queries)


def test_a_larger_query_budget_continues_the_same_run(
    scored: tuple[Oracle, nn.Module, Tensor, Tensor],
) -> None:
    model, _, x, y = scored
    short = SimBA(eps=2.0)(model, x, y, max_queries=20)
    long = SimBA(eps=2.0)(model, x, y, max_queries=60)
    # the same directions in the same order: a sample done within 20 queries is done the same
    done = short.success
    assert torch.equal(long.x_adv[done], short.x_adv[done])
    assert torch.equal(long.queries[done], short.queries[done])
    assert bool((long.queries[short.exhausted] > 20).all())
    assert bool(long.success[done].all())


def test_a_budget_of_one_query_is_the_clean_query(
    scored: tuple[Oracle, nn.Module, Tensor, Tensor],
) -> None:
    model, _, x, y = scored
    y_wrong = y.clone()
    y_wrong[:5] = (y[:5] + 1) % 10  # these five are misclassified already
    result = SimBA(eps=2.0)(model, x, y_wrong, max_queries=1)
    assert result.queries.tolist() == [1] * len(x)
    assert torch.equal(result.x_adv, x)
    assert result.success.tolist() == [True] * 5 + [False] * (len(x) - 5)
    assert torch.equal(result.exhausted, ~result.success)


def test_without_a_binding_budget_no_sample_is_exhausted(
    scored: tuple[Oracle, nn.Module, Tensor, Tensor],
) -> None:
    model, _, x, y = scored
    # a budget far beyond what SimBA spends: a sample stops when it meets the goal or after a
    # pass over the basis that kept no step, never at the budget
    result = SimBA(eps=0.05, norm="linf")(model, x[:10], y[:10], max_queries=10**6)
    assert not bool(result.exhausted.any())
    assert bool((result.queries < 10**6).all())
    assert bool((~result.success).any())  # failures ran out of steps, not of queries


@pytest.mark.parametrize("name", [n for n in names() if not attack_class(n).supports_query_budget])
def test_attacks_without_a_query_budget_refuse_one(name: str) -> None:
    clf0, x, y = softmax_on_digits()
    net = Counting(clf0.module)
    clf = Classifier(net)
    with pytest.raises(InputError, match=r"does not take a query budget \(max_queries\)"):
        small(name)(clf, x[:5], y[:5], max_queries=100)
    assert int(net.rows.sum()) == 0  # before any work, the door's model checks included


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_query_budgets_are_checked(bad: object) -> None:
    model, _ = oracle("scores")
    _, x, y = softmax_on_digits()
    with pytest.raises(InputError, match="max_queries"):
        SimBA(eps=1.0)(model, x[:3], y[:3], max_queries=bad)  # type: ignore[arg-type]


class Greedy(FixedBudgetAttack):
    """A test attack that claims a query budget but ignores what remains of it."""

    capability = Capability.ORACLE_SCORES
    supports_query_budget = True

    def _run(self, run: AttackRun) -> Tensor:
        for _ in range(3):
            run.access.scores(run.x)
        return run.x


def test_querying_past_the_budget_is_an_error_of_the_attack() -> None:
    model, _ = oracle("scores")
    _, x, y = softmax_on_digits()
    with pytest.raises(QueryBudgetExceeded, match="Greedy queried samples that had spent"):
        Greedy(eps=0.1)(model, x[:3], y[:3], max_queries=2)
    assert Greedy(eps=0.1)(model, x[:3], y[:3], max_queries=3).queries.tolist() == [3] * 3


def test_owners_tell_the_samples_apart(spread: tuple[nn.Module, Tensor, Tensor]) -> None:
    _, x, _ = spread
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * BALL_RADIUS
    assert torch.equal(owners(x + noise, x), torch.arange(len(x)))
