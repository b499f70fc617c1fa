"""Attack loops wait for the device at most once per iteration.

A host sync (a value read on the host, an output sized by values, a copy from the host) stalls
a GPU until its queue drains. :class:`~brittle.attacks.host_syncs.HostSyncs` counts the calls
that cause one, on the CPU as well; each attack's loop is run at two lengths on a problem
where no sample stops early, and the difference per iteration is bounded.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from brittle import Classifier
from brittle.attacks import (
    APGD,
    APGDT,
    BIM,
    JSMA,
    MIFGSM,
    PGD,
    Attack,
    CarliniWagnerL2,
    DeepFool,
    SimBA,
    Square,
)
from brittle.attacks import jsma as jsma_module
from brittle.attacks.host_syncs import (
    HostSyncs,
    count_host_syncs,
    forward_passes,
    syncs_per_iteration,
)
from brittle.attacks.rows import first

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = 1e-4
"""A budget too small to fool the models below: every sample runs every iteration."""


def mlp() -> Classifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    return Classifier(net, bounds=(0.0, 1.0))


def problem(n: int = 6) -> tuple[Classifier, Tensor, Tensor]:
    model = mlp()
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, x, model.predict(x)


class Cubic(nn.Module):
    """Logits [0, -(s^3 + 1)], s = w.x: DeepFool's linear steps reach s = -1 only slowly."""

    def forward(self, x: Tensor) -> Tensor:
        s = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(s), -(s**3 + 1)], dim=1)


LOOPS: dict[str, tuple[Callable[[int], Attack], tuple[int, int]]] = {
    "square-linf": (lambda q: Square(TINY, max_queries=q), (8, 16)),
    "square-l2": (lambda q: Square(TINY, norm="l2", max_queries=q), (8, 16)),
    "apgd": (lambda s: APGD(TINY, steps=s), (5, 10)),
    "apgd-t": (lambda s: APGDT(TINY, steps=s, n_target_classes=1), (5, 10)),
    "pgd": (lambda s: PGD(TINY, steps=s), (5, 10)),
    "bim": (lambda s: BIM(TINY, steps=s), (5, 10)),
    "mifgsm": (lambda s: MIFGSM(TINY, steps=s), (5, 10)),
    "cw": (lambda s: CarliniWagnerL2(steps=s, binary_steps=1, abort_early=False), (5, 10)),
}


@pytest.mark.parametrize("name", list(LOOPS))
def test_an_iteration_syncs_at_most_once(name: str) -> None:
    build, sizes = LOOPS[name]
    rate = syncs_per_iteration(build, sizes, *problem())
    assert rate.iterations >= 4
    assert rate.per_iteration <= 1.0, rate.by_call


@pytest.mark.parametrize("basis", ["pixel", "dct"])
def test_simba_syncs_once_per_step(basis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SimBA's iteration is a direction of two steps: the second is taken only by the samples
    the first did not help, so each step's batch needs a count of its own (a step whose
    candidates all stay where the iterates are makes no query, but still its count)."""
    directions = [0]
    step = SimBA._try

    def counted(*args: object, **kwargs: object) -> object:
        directions[0] += 1
        return step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SimBA, "_try", counted)
    model, x, y = problem()
    SimBA(TINY, basis=basis, max_queries=8)(model, x, y)  # the model's first-call checks
    syncs, tries = [], []
    for q in (8, 16):
        directions[0] = 0
        syncs.append(
            count_host_syncs(lambda q=q: SimBA(TINY, basis=basis, max_queries=q)(model, x, y)).total
        )
        tries.append(directions[0])
    assert tries[1] > tries[0]
    assert syncs[1] - syncs[0] <= 2 * (tries[1] - tries[0])


def test_deepfool_syncs_once_per_iteration() -> None:
    model = Classifier(Cubic(), bounds=(-float("inf"), float("inf")))
    x = 10 + torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    rate = syncs_per_iteration(
        lambda s: DeepFool(steps=s, candidates=1), (3, 6), model, x, torch.zeros(4).long(), 2
    )
    assert rate.iterations == 3
    assert rate.per_iteration <= 1.0, rate.by_call


def test_jsma_syncs_once_per_iteration_and_per_new_widest_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JSMA's pair search lays each row's candidates out in the widest row's slots so far;
    a row wider than all before needs the search again, after one more count."""
    searches = [0]
    search = jsma_module.pair_search

    def counted(*args: object, **kwargs: object) -> object:
        searches[0] += 1
        return search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jsma_module, "pair_search", counted)
    model, x, y = problem(4)
    target = model.predict_logits(x).argmin(1)
    syncs, passes = [], []
    for k in (8, 16):
        searches[0] = 0
        with forward_passes(model.module) as seen, HostSyncs() as counted_syncs:
            result = JSMA(eps=k / 64, targeted=True)(model, x, y, target=target)
        assert not bool(result.success.any())
        iterations = seen[0] - 2  # the clean and the returned inputs' passes
        syncs.append(counted_syncs.total)
        passes.append((iterations, searches[0] - iterations))  # the searches done again
    (short, again_short), (long, again_long) = passes
    assert long > short
    assert syncs[1] - syncs[0] <= (long - short) + (again_long - again_short)


def test_the_counter_sees_each_kind_of_sync() -> None:
    t = torch.arange(6.0)
    mask = t > 2
    cases: dict[str, Callable[[], object]] = {
        "read:__bool__": lambda: bool(t.any()),
        "read:__int__": lambda: int(t.sum()),
        "read:__float__": lambda: float(t.sum()),
        "read:item": lambda: t.sum().item(),
        "read:tolist": lambda: t.tolist(),
        "read:cpu": lambda: t.cpu(),
        "shape:nonzero": lambda: mask.nonzero(),
        "shape:__getitem__": lambda: t[mask],
        "shape:__setitem__": lambda: t.clone().__setitem__(mask, 0.0),
        "shape:where": lambda: torch.where(mask),
        "shape:repeat_interleave": lambda: t.repeat_interleave(torch.ones(6, dtype=torch.long)),
        "copy:to": lambda: t.to(torch.device("cpu")),
        "copy:tensor": lambda: torch.tensor([1.0], device="cpu"),
    }
    for call, fn in cases.items():
        assert dict(count_host_syncs(fn).calls) == {call: 1}, call


def test_the_counter_leaves_device_work_alone() -> None:
    t = torch.arange(6.0)
    idx = torch.tensor([4, 1])

    def work() -> None:
        u = t[idx] * 2
        t.clone()[idx] = u
        torch.where(t > 2, t, -t).sort(stable=True)
        t.to(torch.float64)
        len(t)
        t.repeat_interleave(2)

    assert count_host_syncs(work).total == 0


def test_first_is_nonzero_without_a_sync() -> None:
    g = torch.Generator().manual_seed(0)
    for n in (0, 1, 7, 100):
        mask = torch.rand(n, generator=g) < 0.4
        count = int(mask.sum())
        with HostSyncs() as syncs:
            rows = first(mask, count)
        assert syncs.total == 0
        assert torch.equal(rows, mask.nonzero().squeeze(1))
