"""The unit of work of an evaluation: a chunk of samples, attacked by every attack at every
budget.

The drawn samples are cut into chunks of ``batch_size`` consecutive ids, whatever the number
of processes. A :class:`Ticket` is one chunk with what the store already holds of it: per
(attack, budget), the ids already attacked and, of those, the ids no longer standing
(misclassified before or after the attack). :func:`attack_ticket` attacks what is missing,
budget by budget and attack by attack, each attack that runs on the samples still standing
reading the earlier attacks' rows of the same chunk (stored or just computed): so the work
of one chunk never waits for another chunk, and one process or several, attacking the same
chunks, compute the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from brittle.attacks.result import AttackResult
from brittle.data.source import Source
from brittle.eval.spec import AttackSpec
from brittle.eval.store import ResultStore
from brittle.model import Model

Stage = tuple[int, float]
"""An attack of the evaluation (its place in the list) at one budget."""


@dataclass(frozen=True)
class Ticket:
    """Chunk ``index``: the samples' ``rows`` in the data, their ``ids`` and their
    ``positions`` among the evaluated samples (what a tensor of targets is indexed by); per
    stage, the ids the store ``done`` and, of those, the ``fallen`` ones."""

    index: int
    rows: list[int]
    ids: list[int]
    positions: list[int]
    done: dict[Stage, set[int]] = field(default_factory=dict)
    fallen: dict[Stage, set[int]] = field(default_factory=dict)

    def missing(self, stage: Stage) -> int:
        """How many of the chunk's samples the stage has not attacked yet."""
        return sum(sid not in self.done.get(stage, ()) for sid in self.ids)


@dataclass(frozen=True)
class Piece:
    """The result of one stage on the samples ``ids`` of a chunk (their clean inputs ``x``),
    and how many samples it skipped because earlier attacks had broken them. A piece that
    travels between processes leaves its inputs behind (:meth:`travelling`) but for the
    ``images`` (clean, adversarial) of the samples whose images the report keeps."""

    stage: Stage
    ids: list[int]
    result: AttackResult | None
    x: Tensor | None
    skipped: int = 0
    images: dict[int, tuple[Tensor, Tensor]] | None = None

    def travelling(self, keep: set[int]) -> Piece:
        """This piece without its inputs (on the CPU, each tensor in a storage of its own, so
        that no view drags its whole batch along), but the kept samples' images."""
        if self.result is None or self.x is None:
            return self
        result = self.result
        images = {
            sid: (self.x[i].detach().cpu().clone(), result.x_adv[i].detach().cpu().clone())
            for i, sid in enumerate(self.ids)
            if sid in keep
        }
        light = replace(result, x_adv=result.x_adv.new_zeros(len(result), 0))
        moved = {
            f.name: getattr(light, f.name).cpu().clone()  # its own storage, not a view's
            for f in fields(light)
            if isinstance(getattr(light, f.name), Tensor)
        }
        return replace(self, result=replace(light, **moved), x=None, images=images)


def make_tickets(
    store: ResultStore,
    run_key: str,
    plans: Sequence[AttackSpec],
    budgets: Sequence[float],
    ids: Sequence[int],
    rows: Sequence[int],
    batch_size: int,
) -> list[Ticket]:
    """The chunks of ``ids`` (in order, ``batch_size`` each) with what ``store`` holds of
    them; the fallen ids are read only when an attack runs on the samples still standing."""
    wanted = set(ids)
    done = {
        (a, float(eps)): store.done(run_key, plan.key, eps) & wanted
        for a, plan in enumerate(plans)
        for eps in budgets
    }
    fallen: dict[Stage, set[int]] = {}
    if any(plan.survivors_only for plan in plans):
        for (a, eps), held in done.items():
            if held and a < len(plans) - 1:
                stored = store.result(run_key, plans[a].key, eps, sorted(held))
                fallen[a, eps] = fallen_ids(stored)
    tickets = []
    for index, start in enumerate(range(0, len(ids), batch_size)):
        chunk_ids = list(ids[start : start + batch_size])
        mine = set(chunk_ids)
        tickets.append(
            Ticket(
                index=index,
                rows=list(rows[start : start + batch_size]),
                ids=chunk_ids,
                positions=list(range(start, start + len(chunk_ids))),
                done={stage: held & mine for stage, held in done.items()},
                fallen={stage: down & mine for stage, down in fallen.items()},
            )
        )
    return tickets


def attack_ticket(
    model: Model,
    plans: Sequence[AttackSpec],
    budgets: Sequence[float],
    source: Source,
    ticket: Ticket,
) -> Iterator[Piece]:
    """Attack what ``ticket`` misses, budget by budget and attack by attack; one
    :class:`Piece` per stage that had samples to attack or to skip."""
    for eps in budgets:
        down: set[int] = set()
        for a, plan in enumerate(plans):
            stage = (a, float(eps))
            done = ticket.done.get(stage, set())
            todo = [i for i, sid in enumerate(ticket.ids) if sid not in done]
            skipped = 0
            if plan.survivors_only:
                standing = [i for i in todo if ticket.ids[i] not in down]
                skipped, todo = len(todo) - len(standing), standing
            if todo:
                rows = [ticket.rows[i] for i in todo]
                ids = [ticket.ids[i] for i in todo]
                x, y = source.fetch(rows)
                index = torch.as_tensor([ticket.positions[i] for i in todo], dtype=torch.long)
                target = plan.target[index] if isinstance(plan.target, Tensor) else plan.target
                id_tensor = torch.as_tensor(ids, dtype=torch.long)
                result = plan.build(eps)(model, x, y, target, eps=eps, ids=id_tensor)
                down |= fallen_ids(result)
                yield Piece(stage, ids, result, x, skipped)
            elif skipped:
                yield Piece(stage, [], None, None, skipped)
            down |= ticket.fallen.get(stage, set())


def write(
    store: ResultStore, run_key: str, plans: Sequence[AttackSpec], piece: Piece, keep: set[int]
) -> None:
    """Store one piece in one transaction (its kept images with it)."""
    if piece.result is None:
        return
    a, eps = piece.stage
    plan = plans[a]
    store.insert(
        run_key,
        plan.key,
        eps,
        piece.ids,
        piece.result,
        attack_name=plan.label,
        x=piece.x,
        keep=keep,
        images=piece.images,
    )


def fallen_ids(rows: AttackResult) -> set[int]:
    """The ids of ``rows`` no longer standing: misclassified before or after the attack."""
    down = ~rows.correct_clean | (rows.pred_adv != rows.y)
    return {sid for sid, d in zip(rows.ids.tolist(), down.tolist(), strict=True) if d}
