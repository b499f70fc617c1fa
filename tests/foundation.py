"""What the tests of the model-access layer, the criteria and the attack bases share: every
registered attack with small steps, a module that counts what it computes per sample,
well-separated digits, and a tiny net with batchnorm and dropout."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from brittle.attacks.base import Attack, FixedBudgetAttack
from brittle.attacks.registry import attack_class, attack_names

SMALL: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": 0.12},
    "bim": {"eps": 0.12, "steps": 4},
    "pgd": {"eps": 0.12, "steps": 4, "restarts": 2},
    "mifgsm": {"eps": 0.12, "steps": 4},
    "lbfgs": {"targeted": False, "binary_steps": 2, "max_iter": 4},
    "cw": {"steps": 8, "binary_steps": 2},
    "deepfool": {"steps": 4, "candidates": 3},
    "fab": {"steps": 4},
    "fab-t": {"steps": 4, "n_target_classes": 2},
    "simba": {"eps": 1.2, "max_queries": 40},
    "square": {"eps": 0.12, "max_queries": 40},
    "jsma": {"eps": 0.05, "theta": 0.5},
    "hopskipjump": {"max_queries": 60, "steps": 2, "init_evals": 8},
    "rays": {"max_queries": 40},
    "apgd": {"eps": 0.12, "steps": 4},
    "apgd-t": {"eps": 0.12, "steps": 4, "n_target_classes": 2},
    "substitute": {
        "eps": 0.12,
        "data": "digits",
        "labels": "given",
        "rounds": 0,
        "seed_size": 30,
        "epochs": 1,
    },
}
"""Parameters that make each registered attack quick on 8x8 digits. Fixed-budget budgets keep
every point an attack queries within L2 distance 0.12 * 8 = 0.96 (Linf over 64 features) or
1.2 (L2) of its original."""

BALL_RADIUS = 1.2
"""The largest L2 distance from its original of any point a fixed-budget attack in
:data:`SMALL` queries."""


def names() -> list[str]:
    """Every registered attack name (the registry is the list the tests cover)."""
    return attack_names()


def small(name: str, **overrides: Any) -> Attack:
    """The registered attack ``name`` built with :data:`SMALL` parameters."""
    return attack_class(name)(**{**SMALL[name], **overrides})


def fixed(name: str, **overrides: Any) -> FixedBudgetAttack:
    """:func:`small` for a fixed-budget attack (to wrap in Minimize or WorstCase)."""
    attack = small(name, **overrides)
    assert isinstance(attack, FixedBudgetAttack)
    return attack


def digits() -> tuple[Tensor, Tensor]:
    """All of sklearn's 8x8 digits as (N, 1, 8, 8) float32 in [0, 1], and their labels."""
    data = load_digits()
    x = torch.tensor(data.data / 16, dtype=torch.float32).view(-1, 1, 8, 8)
    return x, torch.tensor(data.target)


def separated(x: Tensor, n: int, distance: float) -> Tensor:
    """Indices of the first ``n`` inputs (greedily, in order) at L2 distance > ``distance``
    from each other: a point within ``distance / 2`` of one of them is nearest to it alone."""
    flat = x.flatten(1).double()
    chosen: list[int] = []
    for i in range(len(flat)):
        if not chosen or bool((torch.cdist(flat[i : i + 1], flat[chosen]) > distance).all()):
            chosen.append(i)
        if len(chosen) == n:
            break
    assert len(chosen) == n, f"only {len(chosen)} inputs are {distance} apart"
    return torch.tensor(chosen)


def owners(points: Tensor, originals: Tensor) -> Tensor:
    """For each point, the index of the original it is nearest to (in L2)."""
    flat = originals.flatten(1).double()
    return torch.cdist(points.detach().flatten(1).double(), flat).argmin(1)


class Counting(nn.Module):
    """Wraps a network and counts, per sample, what it computes.

    ``rows[i]``: the rows forwarded that belong to sample ``i``; ``gradient_rows[i]``: the rows
    of sample ``i`` whose input gradient was computed (a hook on the input, which fires once
    per backward pass that reaches it: a vector-Jacobian product of k vectors fires it k
    times). A row belongs to the original it is nearest to (:func:`owners`): exact as long as
    every queried point lies within half the smallest distance between two originals. Without
    ``originals`` every row belongs to sample 0 (totals only).
    """

    def __init__(self, net: nn.Module, originals: Tensor | None = None) -> None:
        super().__init__()
        self.net = net
        self.originals = originals
        size = 1 if originals is None else len(originals)
        self.rows = torch.zeros(size, dtype=torch.long)
        self.gradient_rows = torch.zeros(size, dtype=torch.long)

    def reset(self) -> None:
        self.rows.zero_()
        self.gradient_rows.zero_()

    def _owners(self, x: Tensor) -> Tensor:
        if self.originals is None:
            return torch.zeros(len(x), dtype=torch.long)
        return owners(x, self.originals)

    def forward(self, x: Tensor) -> Tensor:
        who = self._owners(x)
        self.rows.index_add_(0, who, torch.ones_like(who))
        if x.requires_grad:

            def hook(grad: Tensor, who: Tensor = who) -> None:
                self.gradient_rows.index_add_(0, who, torch.ones_like(who))

            x.register_hook(hook)
        out: Tensor = self.net(x)
        return out


@cache
def _bn_dropout_state() -> dict[str, Tensor]:
    x, y = digits()
    torch.manual_seed(0)
    net = _bn_dropout_architecture()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    net.train()
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return {k: v.clone() for k, v in net.state_dict().items()}


def _bn_dropout_architecture() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(256, 10),
    )


def bn_dropout_net() -> nn.Sequential:
    """A conv net with BatchNorm2d and Dropout(0.5), trained briefly on the digits (so its
    running statistics are not the initial ones); a fresh copy each call, in eval mode."""
    net = _bn_dropout_architecture()
    net.load_state_dict(_bn_dropout_state())
    return net.eval()


class Tagged:
    """An Oracle's predict function: the digits model's logits, counting each row for the
    original it is nearest to (a score-based attack's queries stay within the budget of their
    original)."""

    def __init__(self, module: nn.Module, originals: Tensor) -> None:
        self.module = module
        self.originals = originals
        self.rows = torch.zeros(len(originals), dtype=torch.long)

    def __call__(self, x: Tensor) -> Tensor:
        who = owners(x, self.originals)
        self.rows.index_add_(0, who, torch.ones_like(who))
        out: Tensor = self.module(x)
        return out
