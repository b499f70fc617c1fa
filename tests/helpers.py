"""Small models the tests share: a linear binary model and softmax regression on digits."""

from __future__ import annotations

from functools import cache

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from brittle import Classifier


class Hyperplane(nn.Module):
    """Binary linear model with logits [0, w.x + b]: its boundary is the hyperplane w.x + b = 0."""

    def __init__(self, w: Tensor, b: float | Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.as_tensor(b, dtype=w.dtype).clone())

    def score(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w + self.b

    def forward(self, x: Tensor) -> Tensor:
        z = self.score(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@cache
def softmax_on_digits() -> tuple[Classifier, Tensor, Tensor]:
    """Softmax regression trained on sklearn's 8x8 digits (/16, (N, 1, 8, 8)), deterministic,
    and the samples it classifies correctly, in data order (trained once per process)."""
    data = load_digits()
    x = torch.tensor(data.data / 16, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    clf = Classifier(model)
    correct = (clf.predict(x) == y).nonzero().squeeze(1)
    return clf, x[correct], y[correct]


def make_run(attack: object, clf: Classifier, x: Tensor, y: Tensor, eps: Tensor) -> object:
    """An untargeted AttackRun of ``attack`` on ``clf``, as the attack base would make it."""
    from brittle.access import ModelAccess
    from brittle.attacks.base import AttackRun
    from brittle.criteria import Misclassification

    access = ModelAccess(clf, attack.capability, len(x), attack.name)  # type: ignore[attr-defined]
    ids = torch.arange(len(x))
    return AttackRun(access, x, y, Misclassification(), None, ids, 0, eps.double(), _model=clf)
