"""The one way an attack reaches the model during a run: counted, and limited to what the
attack's declared capability allows.

A :class:`ModelAccess` is made by the attack base for one call. It offers, from weakest to
strongest capability:

- :meth:`ModelAccess.labels`, the decision only (``ORACLE_LABELS``);
- :meth:`ModelAccess.scores` and :meth:`ModelAccess.logits` (``ORACLE_SCORES``; logits need
  a :class:`~brittle.classifier.Classifier`);
- :meth:`ModelAccess.loss_gradient` with a chosen loss, :meth:`ModelAccess.vjp` and
  :meth:`ModelAccess.jacobian`, the forward derivative of Papernot et al. 2016 (``WHITE_BOX``).

Every call counts, per sample (the rows ``idx`` of the run it stands for), one query (a
model evaluation) and the input gradients it yields: one for a loss gradient, ``k`` for the
``k`` vector-Jacobian products of a Jacobian of ``k`` classes (one forward pass and ``k``
backward passes to the input, whose cost ``benchmarks/bench_jacobian.py`` measures). On a
randomised model (``model.eot`` set, :mod:`brittle.eot`) a gradient is the mean of
``eot.samples`` draws, each counted: that many queries, and that many times the gradients. With ``max_queries`` a
call that takes a sample past its budget is an error of the attack: attacks drop such samples
first (:meth:`ModelAccess.remaining`). The counts and the check stay on the device, so that an
attack's loop never waits for it; :meth:`ModelAccess.check_budget` raises, once the attack has
run, if any call went past a budget.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from brittle.classifier import Classifier
from brittle.eot import gradient_draws
from brittle.errors import ThreatModelError
from brittle.losses import Loss, LossName, resolve_loss
from brittle.model import Bounds, Model
from brittle.threat import Capability


class QueryBudgetExceeded(RuntimeError):
    """An attack asked for a sample past its query budget: a bug in the attack, never the user's."""


class ModelAccess:
    """Counted, capability-checked access to a model for one attack call of ``n`` samples."""

    def __init__(
        self,
        model: Model,
        capability: Capability,
        n: int,
        attack: str,
        max_queries: int | None = None,
    ) -> None:
        self._model = model
        self._capability = capability
        self._attack = attack
        self.max_queries = max_queries
        self.queries = torch.zeros(n, dtype=torch.long, device=model.device)
        self.gradients = torch.zeros(n, dtype=torch.long, device=model.device)
        self._overdrawn = torch.zeros((), dtype=torch.bool, device=model.device)

    # ------------------------------------------------------------------ what the model is
    @property
    def capability(self) -> Capability:
        """What this access grants: the attack's declared capability."""
        return self._capability

    @property
    def bounds(self) -> Bounds:
        return self._model.bounds

    @property
    def bounded(self) -> bool:
        return self._model.bounded

    @property
    def num_classes(self) -> int:
        assert self._model.num_classes is not None
        return self._model.num_classes

    def clip(self, x: Tensor) -> Tensor:
        """``x`` clipped to the model's input box."""
        return self._model.clip(x)

    def probabilities(self, scores: Tensor) -> Tensor:
        """Class probabilities from the scores this model returns."""
        return self._model.probabilities(scores)

    def log_probabilities(self, scores: Tensor) -> Tensor:
        """Log class probabilities from the scores this model returns."""
        return self._model.log_probabilities(scores)

    # ------------------------------------------------------------------ budget and counts
    def remaining(self, idx: Tensor | None = None) -> Tensor:
        """Queries each sample may still make (a very large number without a budget)."""
        used = self.queries if idx is None else self.queries[idx]
        if self.max_queries is None:
            return torch.full_like(used, torch.iinfo(torch.long).max)
        return self.max_queries - used

    def check_budget(self) -> None:
        """Raise :class:`QueryBudgetExceeded` if a call queried a sample that had spent its
        budget (one host sync: called once, after the attack ran)."""
        if self.max_queries is not None and bool(self._overdrawn):
            raise QueryBudgetExceeded(
                f"{self._attack} queried samples that had spent their budget of "
                f"{self.max_queries} queries"
            )

    def _charge(self, idx: Tensor | None, gradients: int, queries: int = 1) -> None:
        """Count ``queries`` (and ``gradients``) for the rows ``idx``; note, on the device, a
        query past a budget (:meth:`check_budget` reports it)."""
        rows = torch.arange(len(self.queries), device=self.queries.device) if idx is None else idx
        if self.max_queries is not None:
            self._overdrawn |= (self.queries[rows] + queries > self.max_queries).any()
        self.queries.index_add_(0, rows, torch.full_like(rows, queries))
        if gradients:
            self.gradients.index_add_(0, rows, torch.full_like(rows, gradients))

    def _require(self, needed: Capability, what: str) -> None:
        if self._capability < needed:
            raise ThreatModelError(
                f"{self._attack} declares capability {self._capability.name} but asked for "
                f"{what}, which needs {needed.name}; declare the capability the attack uses"
            )
        if self._model.capability < needed:
            raise ThreatModelError(
                f"{self._attack} asked for {what}, which needs {needed.name}, but the model "
                f"only grants {self._model.capability.name}"
            )

    # ------------------------------------------------------------------ oracle access
    def labels(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """The predicted class of each input (one query each)."""
        self._require(Capability.ORACLE_LABELS, "labels")
        self._charge(idx, 0)
        return self._forward(x).argmax(1)

    def scores(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """The model's scores (a classifier's logits, an oracle's scores), one query each."""
        self._require(Capability.ORACLE_SCORES, "scores")
        self._charge(idx, 0)
        return self._forward(x)

    def logits(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """A classifier's logits, without gradient (one query each)."""
        self._require(Capability.ORACLE_SCORES, "logits")
        self._white_box_model("logits")
        self._charge(idx, 0)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        return self._model.current_scores(x).to(x.dtype)

    def _white_box_model(self, what: str) -> Callable[[Tensor], Tensor]:
        if not isinstance(self._model, Classifier):
            raise ThreatModelError(
                f"{self._attack} asked for {what}, which only a brittle.Classifier has"
            )
        return self._model.logits

    # ------------------------------------------------------------------ white-box access
    def loss_gradient(
        self,
        x: Tensor,
        labels: Tensor,
        loss: LossName | Loss = "ce",
        idx: Tensor | None = None,
        sign: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """grad_x of ``sign * loss(f(x), labels)`` per sample, and the logits at ``x``.

        The loss is summed over the batch (not averaged), so each sample's gradient does not
        depend on the batch size and tiny gradients do not underflow. On a randomised model
        (EOT) the gradient and the logits are the means over ``model.eot.samples`` draws,
        each a forward and a backward pass counted as a query and a gradient.
        """
        self._require(Capability.WHITE_BOX, "a loss gradient")
        forward = self._white_box_model("a loss gradient")
        fn = resolve_loss(loss)
        draws = gradient_draws(self._model)
        self._charge(idx, draws, draws)
        x = x.detach().requires_grad_(True)

        def one_draw() -> tuple[Tensor, Tensor]:
            with torch.enable_grad():
                logits = forward(x)
                total = fn(logits, labels).sum()
                (grad,) = torch.autograd.grad(total * sign if sign != 1 else total, x)
            return grad, logits.detach()

        return _mean_over_draws(one_draw, draws)

    def vjp(
        self, x: Tensor, vectors: Tensor, idx: Tensor | None = None, of: str = "logits"
    ) -> tuple[Tensor, Tensor]:
        """Rows of the forward derivative: ``P[n, i] = vectors[n, i] . dF(x_n)/dx_n``.

        ``vectors`` is ``(N, k, K)``; ``F`` the logits (``of="logits"``) or the softmax
        probabilities (``of="probabilities"``). Returns ``P`` of shape ``(N, k, *x.shape[1:])``
        and the logits. One forward pass, then one backward pass per vector (on a LeNet this
        beats batching the backward passes with vmap, ``is_grads_batched`` or ``torch.func``,
        and it works with any module: ``benchmarks/bench_jacobian.py``); counted as one query
        and ``k`` gradients per sample. On a randomised model (EOT) the products and the
        logits are the means over ``model.eot.samples`` draws, each counted.
        """
        self._require(Capability.WHITE_BOX, "a Jacobian")
        forward = self._white_box_model("a Jacobian")
        if of not in ("logits", "probabilities"):
            raise ValueError(f"of must be 'logits' or 'probabilities', got {of!r}")
        k = vectors.shape[1]
        draws = gradient_draws(self._model)
        self._charge(idx, k * draws, draws)
        x = x.detach().requires_grad_(True)

        def one_draw() -> tuple[Tensor, Tensor]:
            with torch.enable_grad():
                logits = forward(x)
                out = logits.softmax(1) if of == "probabilities" else logits
                v = vectors.to(out.dtype)
                rows = [
                    torch.autograd.grad(out, x, v[:, i], retain_graph=i < k - 1)[0]
                    for i in range(k)
                ]
            return torch.stack(rows, dim=1), logits.detach()

        return _mean_over_draws(one_draw, draws)

    def jacobian(
        self, x: Tensor, classes: Tensor, idx: Tensor | None = None, of: str = "logits"
    ) -> tuple[Tensor, Tensor]:
        """dF_c/dx for the classes ``classes`` ``(N, k)`` of each sample: ``(N, k, *shape)``."""
        k = self.num_classes
        vectors = torch.nn.functional.one_hot(classes, k).to(x.dtype)
        return self.vjp(x, vectors, idx, of)


def _mean_over_draws(
    one_draw: Callable[[], tuple[Tensor, Tensor]], draws: int
) -> tuple[Tensor, Tensor]:
    """The means of a (derivative, logits) pair over ``draws`` calls of ``one_draw``: the
    expectation over transformation's estimate (Athalye et al. 2018), each draw one forward
    and backward pass of a randomised model; the pair itself when ``draws`` is 1."""
    derivative, logits = one_draw()
    for _ in range(draws - 1):
        more_derivative, more_logits = one_draw()
        derivative, logits = derivative + more_derivative, logits + more_logits
    if draws == 1:
        return derivative, logits
    return derivative / draws, logits / draws
