"""Random draws belong to samples, not batches: the same sample id gets the same draws in any
batch, at any position, and another id or another seed gets other draws."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from brittle import Classifier
from brittle.attacks import FGSM, PGD, SimBA, Square
from brittle.attacks.base import Attack
from brittle.attacks.host_syncs import count_host_syncs
from brittle.attacks.result import AttackResult
from brittle.criteria import random_targets
from brittle.randomness import (
    normal,
    per_sample,
    philox4x32,
    philox_key,
    sample_generator,
    uniform,
)
from helpers import softmax_on_digits

pytestmark = pytest.mark.usefixtures("one_thread")

STOCHASTIC: dict[str, tuple[Callable[[], Attack], dict[str, object]]] = {
    "pgd-restarts": (lambda: PGD(0.1, steps=5, restarts=2, random_start=True), {}),
    "pgd-l2-targeted": (
        lambda: PGD(0.6, norm="l2", steps=5, restarts=2, targeted=True),
        {"target": "random"},
    ),
    "fgsm-random-targets": (lambda: FGSM(0.15, targeted=True), {"target": "random"}),
    "simba-pixel": (lambda: SimBA(0.8, max_queries=40), {}),
    "simba-dct": (lambda: SimBA(0.1, norm="linf", basis="dct", max_queries=40), {}),
    "square-linf": (lambda: Square(0.1, max_queries=40), {}),
    "square-l2": (lambda: Square(0.8, norm="l2", max_queries=40), {}),
}


@pytest.fixture(scope="module")
def digits() -> tuple[Classifier, Tensor, Tensor]:
    clf, x, y = softmax_on_digits()
    return clf, x[:64], y[:64]


def in_batches(
    attack: Attack, clf: Classifier, x: Tensor, y: Tensor, size: int, kwargs: dict[str, object]
) -> AttackResult:
    """The attack over ``x`` in consecutive batches of ``size``, each sample's id its index."""
    parts = []
    for start in range(0, len(x), size):
        ids = torch.arange(start, min(start + size, len(x)))
        parts.append(attack(clf, x[ids], y[ids], ids=ids, **kwargs))  # type: ignore[arg-type]
    return AttackResult.concat(parts)


@pytest.mark.parametrize("name", list(STOCHASTIC))
def test_results_do_not_depend_on_the_batch(
    digits: tuple[Classifier, Tensor, Tensor], name: str
) -> None:
    clf, x, y = digits
    build, kwargs = STOCHASTIC[name]
    attack = build()
    whole = in_batches(attack, clf, x, y, 64, kwargs)
    assert bool(whole.success.any()) and not bool(whole.success.all())
    for size in (1, 7):
        split = in_batches(attack, clf, x, y, size, kwargs)
        # batched matmuls may round differently: equal draws, results equal up to rounding
        assert torch.allclose(split.x_adv, whole.x_adv, rtol=0, atol=1e-6)
        assert torch.equal(split.success, whole.success)
        assert torch.equal(split.queries, whole.queries)
        if whole.target is not None:
            assert split.target is not None and torch.equal(split.target, whole.target)
    # nor on a sample's position in its batch
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    shuffled = attack(clf, x[order], y[order], ids=order, **kwargs)  # type: ignore[arg-type]
    assert torch.allclose(shuffled.x_adv, whole.x_adv[order], rtol=0, atol=1e-6)
    assert torch.equal(shuffled.success, whole.success[order])


@pytest.mark.parametrize(
    "name", ["pgd-restarts", "simba-pixel", "square-l2", "fgsm-random-targets"]
)
def test_other_ids_or_another_seed_give_other_draws(
    digits: tuple[Classifier, Tensor, Tensor], name: str
) -> None:
    clf, x, y = digits
    build, kwargs = STOCHASTIC[name]
    attack = build()
    base = attack(clf, x, y, ids=torch.arange(len(x)), **kwargs)  # type: ignore[arg-type]
    moved = attack(clf, x, y, ids=torch.arange(len(x)) + 1000, **kwargs)  # type: ignore[arg-type]
    attack.seed = 1
    reseeded = attack(clf, x, y, ids=torch.arange(len(x)), **kwargs)  # type: ignore[arg-type]
    for other in (moved, reseeded):
        if base.target is not None:
            assert other.target is not None
            assert bool((other.target != base.target).any())
        else:
            differs = (other.x_adv != base.x_adv).flatten(1).any(1)
            assert float(differs.float().mean()) > 0.5


def draw(g: torch.Generator) -> Tensor:
    return torch.rand(16, generator=g)


def test_a_generator_is_a_function_of_seed_id_and_stream() -> None:
    first = draw(sample_generator(0, 7, "start"))
    assert torch.equal(first, draw(sample_generator(0, 7, "start")))
    assert not torch.equal(first, draw(sample_generator(0, 8, "start")))  # another id
    assert not torch.equal(first, draw(sample_generator(1, 7, "start")))  # another seed
    assert not torch.equal(first, draw(sample_generator(0, 7, "order")))  # another stream
    assert not torch.equal(first, draw(sample_generator(0, 7, ("start", 1))))
    # ids and seeds may be negative, and are not confused with their positive twins
    assert not torch.equal(draw(sample_generator(-1, 7, "s")), draw(sample_generator(1, 7, "s")))
    assert not torch.equal(draw(sample_generator(0, -7, "s")), draw(sample_generator(0, 7, "s")))


def test_each_row_depends_only_on_its_own_id() -> None:
    ids = torch.tensor([5, 3, 9, 3])
    rows = per_sample(0, ids, "start", draw)
    assert rows.shape == (4, 16)
    assert torch.equal(rows[1], rows[3])  # the same id twice: the same draw
    for i, sample in enumerate(ids.tolist()):
        assert torch.equal(rows[i], per_sample(0, torch.tensor([sample]), "start", draw)[0])
    assert len({tuple(r.tolist()) for r in rows}) == 3


def test_random_targets_are_other_classes_drawn_per_id() -> None:
    y = torch.arange(900) % 10
    ids = torch.arange(900)
    t = random_targets(y, 10, ids, seed=0)
    assert bool((t != y).all()) and bool((t >= 0).all()) and bool((t < 10).all())
    # every other class is drawn for every label
    for label in range(10):
        assert set(t[y == label].tolist()) == set(range(10)) - {label}
    assert torch.equal(random_targets(y.flip(0), 10, ids.flip(0), 0), t.flip(0))


# ----------------------------------------------------------------------------- on the device
KNOWN_ANSWERS = [  # Random123's kat_vectors for Philox4x32-10: counter, key, output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_philox_gives_the_reference_implementations_answers(
    counter: tuple[int, ...], key: tuple[int, int], expected: tuple[int, ...]
) -> None:
    words = tuple(torch.tensor([c], dtype=torch.long) for c in counter)
    out = philox4x32(words, key)  # type: ignore[arg-type]
    assert [int(w) for w in out] == list(expected)


def test_uniforms_are_a_function_of_seed_id_stream_and_place() -> None:
    ids = torch.tensor([5, -7, 2**40, 5, 2**40 + 1, 2**32 + 5])
    u = uniform(0, ids, "start", 11)
    assert u.shape == (6, 11) and u.dtype == torch.float64
    assert bool((u >= 0).all() & (u < 1).all())
    assert torch.equal(u[0], u[3])  # the same id twice: the same row
    assert len({tuple(r.tolist()) for r in u}) == 5  # negative, large, 2^32 apart: distinct
    for start in range(11):
        for count in range(11 - start):  # any range alone, any sample alone
            assert torch.equal(uniform(0, ids, "start", count, start), u[:, start : start + count])
    assert torch.equal(uniform(0, ids[2:3], "start", 11)[0], u[2])
    for other in (uniform(1, ids, "start", 11), uniform(0, ids, ("start", 1), 11)):
        assert not bool((other == u).any())
    # the key is the hash of (seed, stream): a negative seed is not its positive twin
    assert philox_key(-1, "s") != philox_key(1, "s") and philox_key(0, "s") != philox_key(0, "t")
    assert uniform(0, ids[:0], "start", 4).shape == (0, 4)


def test_uniforms_and_normals_have_their_distributions() -> None:
    from scipy import stats

    ids = torch.arange(400)
    u = uniform(3, ids, "check", 250)
    assert stats.kstest(u.flatten().numpy(), "uniform").pvalue > 1e-3
    # neighbouring ids and neighbouring places are uncorrelated
    for a, b in ((u[:-1], u[1:]), (u[:, :-1], u[:, 1:])):
        r = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
        assert abs(float(r)) < 0.01
    z = normal(3, ids, "check", 251)
    assert z.shape == (400, 251)
    assert stats.kstest(z.flatten().numpy(), "norm").pvalue > 1e-3


def test_draws_need_no_host_sync() -> None:
    ids = torch.arange(50) * 3
    assert count_host_syncs(lambda: uniform(0, ids, ("square", 2), 300, start=17)).total == 0
    assert count_host_syncs(lambda: normal(0, ids, "start", 31)).total == 0


def test_another_process_draws_the_same_numbers() -> None:
    """Nothing of the process enters the draws: another interpreter, another global seed and
    thread count give the same bits."""
    ids = [3, 1000, -2, 2**35]
    code = (
        "import torch; torch.manual_seed(123); torch.set_num_threads(1);"
        "from brittle.randomness import uniform, normal;"
        f"ids = torch.tensor({ids});"
        "print(uniform(7, ids, ('s', 2), 9, 3).tolist(), normal(7, ids, 'n', 5).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    here = (uniform(7, torch.tensor(ids), ("s", 2), 9, 3), normal(7, torch.tensor(ids), "n", 5))
    assert out.strip() == f"{here[0].tolist()} {here[1].tolist()}"
