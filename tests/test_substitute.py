"""Papernot et al. 2017's substitute-and-transfer attack: augmentation (counts, no duplicates,
sign flips, reservoir), the oracle's labels counted as queries, SAMPLES without a query, the
attack contract, and a real transfer on scikit-learn's digits."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier, Oracle
from brittle.attacks.registry import make_attack
from brittle.attacks.substitute import Substitute
from brittle.errors import InputError
from brittle.substitute import (
    HeldOut,
    jacobian_augmentation,
    label_gradient_signs,
    new_point_count,
    reservoir,
    step_size,
    train_substitute,
    unseen,
)
from brittle.testing import check_attack, tiny_problem
from brittle.threat import Capability, ThreatModel
from brittle.zoo import build_model, train_model

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK: dict[str, Any] = {"epochs": 2, "lr": 1e-2}


def counted_oracle(
    model: Classifier, classes: int = 4, shape: tuple[int, ...] = (1, 4, 4)
) -> tuple[Oracle, list[int]]:
    """A label-only oracle of ``model`` and the list its predict function appends each
    call's number of rows to."""
    seen: list[int] = []
    net = model.module

    def predict(x: Tensor) -> Tensor:
        seen.append(len(x))
        with torch.no_grad():
            out: Tensor = net(x).argmax(1)
        return out

    oracle = Oracle(
        predict,
        num_classes=classes,
        input_shape=shape,
        outputs="labels",
        dtype=model.dtype,
    )
    return oracle, seen


def tiny_eval() -> tuple[Classifier, Tensor, Tensor]:
    """The contract's tiny model in eval mode (an oracle answers in one state)."""
    model, x, y = tiny_problem()
    model.module.eval()
    model.check_outputs(x)  # its class count, and its one-off check done before counting
    return model, x, y


# ------------------------------------------------------------------ augmentation
def test_the_step_size_flips_its_sign_every_tau_rounds() -> None:
    steps = [step_size(0.1, rho, 3) for rho in range(9)]
    assert steps == [0.1, 0.1, 0.1, -0.1, -0.1, -0.1, 0.1, 0.1, 0.1]
    flips = [rho for rho in range(1, 9) if steps[rho] != steps[rho - 1]]
    assert flips == [3, 6]
    assert [step_size(0.1, rho, None) for rho in range(5)] == [0.1] * 5


def test_reservoir_draws_kappa_distinct_points_the_same_for_the_same_seed() -> None:
    chosen = reservoir(100, 7, seed=3, rho=4)
    assert len(chosen) == 7 and len(set(chosen.tolist())) == 7
    assert torch.equal(chosen, reservoir(100, 7, seed=3, rho=4))
    assert not torch.equal(chosen, reservoir(100, 7, seed=3, rho=5))
    assert torch.equal(reservoir(5, 7, seed=3, rho=4), torch.arange(5))
    assert [new_point_count(10, rho, 4, 2) for rho in range(4)] == [10, 10, 4, 4]
    assert [new_point_count(10, rho, None, 2) for rho in range(3)] == [10, 10, 10]


def test_one_backward_pass_gives_each_rows_jacobian_row_of_its_label() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    x = torch.rand(11, 1, 4, 4, dtype=torch.float64)
    labels = torch.randint(0, 5, (11,))
    signs = label_gradient_signs(net, x, labels, batch_size=4)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x[i])
        assert torch.equal(signs[i], jac[labels[i]].sign())


def test_unseen_drops_points_already_in_the_set_and_repeated_candidates() -> None:
    existing = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    candidates = torch.tensor([[0.5, 0.5], [0.2, 0.2], [0.2, 0.2], [0.9, 0.1]])
    assert unseen(candidates, existing).tolist() == [False, True, False, True]


def test_a_point_the_step_cannot_move_is_not_added() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    x = torch.tensor([[[1.0, 1.0]], [[0.5, 0.5]]])
    moved = jacobian_augmentation(net, x, torch.tensor([0, 0]), 0.1, (0.0, 1.0))
    assert torch.equal(moved[0], x[0])  # clipped back into the box: the same point
    assert unseen(moved, x).tolist() == [False, True]


def test_augmentation_grows_the_set_by_its_new_points_once_each() -> None:
    model, x, _ = tiny_eval()
    seed = x[:10]
    fit = train_substitute(seed, target=model, rounds=5, kappa=6, sigma=2, seed=1, **QUICK)
    sizes = [r.size for r in fit.rounds]
    assert sizes[:3] == [10, 20, 40]  # full rounds: one new point per old point
    for rho, (before, done) in enumerate(zip(fit.rounds, fit.rounds[1:], strict=False)):
        # each round adds its new points once, labelled once, at most one per chosen point
        assert done.size == before.size + done.added
        assert done.queries == done.added <= new_point_count(before.size, rho, 6, 2)
    assert max(r.added for r in fit.rounds[3:]) == 6  # reservoir rounds: kappa points chosen
    assert len(fit.x) == sizes[-1] == len(fit.labels) == fit.queries
    assert len(torch.unique(fit.x.flatten(1), dim=0)) == len(fit.x)  # no point twice
    assert torch.equal(fit.x[:10], seed.float())  # the seed set kept, first, once
    assert [r.step for r in fit.rounds] == [None, 0.1, 0.1, 0.1, -0.1, -0.1]


def test_a_point_augmented_again_along_the_same_signs_is_not_added_twice() -> None:
    # a linear substitute has the same Jacobian everywhere: a point augmented in two rounds
    # with the same step lands where it landed before, and must not be added (nor queried)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]]))
    x = torch.full((1, 1, 2, 2), 0.5)
    first = jacobian_augmentation(net, x, torch.tensor([0]), 0.1, (0.0, 1.0))
    grown = torch.cat([x, first])
    again = jacobian_augmentation(net, grown, torch.tensor([0, 0]), 0.1, (0.0, 1.0))
    assert torch.equal(again[0], first[0])  # the seed's second child is its first
    assert unseen(again, grown).tolist() == [False, True]


def test_the_fit_is_the_same_for_the_same_seed() -> None:
    model, x, _ = tiny_eval()
    one = train_substitute(x[:8], target=model, rounds=2, seed=5, **QUICK)
    two = train_substitute(x[:8], target=model, rounds=2, seed=5, **QUICK)
    assert torch.equal(one.x, two.x) and torch.equal(one.labels, two.labels)
    for a, b in zip(
        one.module.state_dict().values(), two.module.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ queries and capability
def test_the_queries_are_the_labels_the_oracle_saw() -> None:
    model, x, y = tiny_eval()
    oracle, seen = counted_oracle(model)
    attack = Substitute(0.3, seed_set=x[:12], rounds=3, **QUICK)
    assert attack.capability is Capability.ORACLE_LABELS
    oracle.check_outputs(x)  # the oracle's one-off input check, before counting
    seen.clear()
    result = attack(oracle, x[12:], y[12:])
    assert attack.fit is not None
    labelled = attack.fit.queries
    per_sample = int((result.queries + result.verification_queries).sum())
    assert sum(seen) == labelled + per_sample
    # every point labelled once; a round at most doubles the set (a point it would add
    # twice, it adds once)
    assert labelled == len(attack.fit.x) <= 12 * 2**3
    assert labelled == sum(r.queries for r in attack.fit.rounds)
    assert int(result.queries.sum()) == 0  # the transfer itself asks nothing
    seen.clear()
    again = attack(oracle, x[12:], y[12:])  # kept: no second training
    assert sum(seen) == int(again.verification_queries.sum())
    assert torch.equal(again.x_adv, result.x_adv)


def test_samples_use_no_query_at_all() -> None:
    model, x, y = tiny_eval()
    oracle, seen = counted_oracle(model)
    pairs = (x[:40], model.predict(x[:40]))
    attack = Substitute(0.3, seed_set=pairs, labels="given", rounds=0, **QUICK)
    assert attack.capability is Capability.SAMPLES
    assert ThreatModel(capability=Capability.SAMPLES).permits(attack)
    oracle.check_outputs(x)
    seen.clear()
    result = attack(oracle, x[40:], y[40:])
    assert attack.fit is not None and attack.fit.queries == 0
    assert sum(seen) == int(result.verification_queries.sum())
    assert int(result.queries.sum()) == 0


def test_an_oracle_labelled_substitute_needs_more_than_samples() -> None:
    attack = Substitute(0.3, seed_set=torch.rand(4, 1, 4, 4))
    assert not ThreatModel(capability=Capability.SAMPLES).permits(attack)
    assert ThreatModel(capability=Capability.TRAINING_DATA).permits(attack)
    given = Substitute(
        0.3,
        seed_set=(torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)),
        labels="given",
        rounds=2,
    )
    assert given.capability is Capability.ORACLE_LABELS  # augmentation asks for labels


def test_the_contract_with_a_substitute_trained_on_the_oracles_labels() -> None:
    model, x, _ = tiny_eval()
    fit = train_substitute(x[:16], target=model, rounds=2, seed=0, **QUICK)
    check_attack(Substitute, eps=0.3, trained=fit)
    check_attack(Substitute, eps=0.5, norm="l2", crafter="pgd", trained=fit)


def test_the_contract_for_targeted_transfer() -> None:
    model, x, _ = tiny_eval()
    check_attack(
        Substitute,
        eps=0.3,
        targeted=True,
        seed_set=(x, model.predict(x)),
        labels="given",
        rounds=0,
        **QUICK,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "adversary's inputs"),
        ({"data": "digits", "seed_set": torch.rand(3, 1, 8, 8)}, "not both"),
        ({"seed_set": torch.rand(3, 1, 8, 8), "crafter": "substitute"}, "not itself"),
        ({"seed_set": torch.rand(3, 1, 8, 8), "crafter": "nosuch"}, "unknown attack"),
        ({"seed_set": torch.rand(3, 1, 8, 8), "labels": "given"}, "needs the seed set's labels"),
        ({"seed_set": torch.rand(3, 1, 8, 8), "rounds": -1}, "rounds"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Substitute(0.3, **arguments)


def test_data_of_another_shape_is_refused_with_a_clear_error() -> None:
    model, x, y = tiny_eval()
    attack = Substitute(0.3, seed_set=torch.rand(5, 1, 8, 8))
    with pytest.raises(InputError, match="shape"):
        attack(model, x[:3], y[:3])


def test_the_seed_set_is_the_papers_150_for_the_oracle_and_the_whole_split_when_given() -> None:
    labelled = Substitute(0.2, data="digits", seed=3)._seed_set()
    assert len(labelled[0]) == 150 and labelled[1] is None  # the oracle labels them
    given = Substitute(0.2, data="digits", labels="given", rounds=0)._seed_set()
    assert given[1] is not None and len(given[0]) == len(given[1]) == 1437  # the train split
    assert len(Substitute(0.2, data="digits", seed_size=20)._seed_set()[0]) == 20


def test_the_registry_builds_it_with_the_cli_flags() -> None:
    attack = make_attack("substitute", eps=0.2, data="digits", rounds=2, kappa=10)
    assert isinstance(attack, Substitute)
    assert attack.config()["rounds"] == 2 and attack.config()["kappa"] == 10
    flags = {p.flag for p in Substitute.params}
    assert "--sub-rounds" in flags and "--sub-lambda" in flags


# ------------------------------------------------------------------ a real transfer
def test_the_substitute_agrees_with_the_target_and_its_examples_transfer() -> None:
    from brittle.data import load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    target_net = build_model("mlp", (1, 8, 8), 10, seed=0, hidden=(64,))
    train_model(target_net, train.x, train.y, epochs=15, batch_size=64, lr=3e-3, progress=False)
    target = Classifier(target_net.eval(), bounds=(0.0, 1.0))
    oracle, _ = counted_oracle(target, 10, (1, 8, 8))
    seed_x, x, y = test.x[:100], test.x[100:], test.y[100:]
    held = HeldOut(x, y, target.predict(x))
    fit = train_substitute(seed_x, target=oracle, rounds=4, epochs=5, seed=0, held_out=held)
    result = Substitute(0.2, trained=fit)(oracle, x, y)
    agreement = fit.agreement(x, result.pred_clean)
    assert agreement == fit.rounds[-1].agreement
    # chance agreement of ten classes is about 0.1: the substitute learned the target
    assert agreement > 0.6
    # the augmentation taught the substitute: its last round agrees more than its first
    first = fit.rounds[0].agreement
    assert first is not None and agreement > first
    # random corners of the same budget fool the target far less than the transfer does
    signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noisy = target.predict((x + 0.2 * signs).clamp(0, 1))
    correct = result.pred_clean == y
    noise_rate = float((noisy != y)[correct].double().mean())
    transfer_rate = float(result.success[correct].double().mean())
    assert transfer_rate > noise_rate + 0.2
