"""An evaluation shared by the processes of a ``torch.distributed`` job.

Every rank opens the model and the data and settles the same plan; rank 0, the leader, alone
holds the result store. It cuts the samples into chunks (:mod:`brittle.eval.chunks`) with
what the store already holds and hands them to all ranks. Each rank then claims the next
chunk from a shared counter when it is free (so a rank whose samples stop early takes more,
and none waits on a static split; no sample is attacked twice and none is padded), attacks
it, and posts its rows; the leader attacks chunks too and writes every rank's rows into the
store as they arrive, one transaction a piece. The counter and the posts travel through a
``torch.distributed.TCPStore`` served by the leader. Since every random draw is keyed by
(seed, sample id) and the chunks do not depend on the number of processes, the rows are
those of a one-process run.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from brittle.attacks.result import AttackResult
from brittle.distributed import World
from brittle.errors import InputError, StorageError
from brittle.eval.chunks import Piece, Ticket, write
from brittle.eval.spec import AttackSpec
from brittle.eval.store import ResultStore
from brittle.progress import show_progress

PART = 4 << 20
"""The most bytes one value on the board holds (its server refuses more than 8 MiB)."""
WAIT = timedelta(hours=6)
"""How long the leader waits for a rank's chunk (one chunk of a slow attack on a big model)."""


@dataclass
class Share:
    """The job's shared work: where the chunks are claimed and posted, and how a chunk is
    attacked (``attack(ticket)`` yields its pieces)."""

    world: World
    board: dist.Store
    plans: Sequence[AttackSpec]
    budgets: Sequence[float]
    run_key: str
    attack: Callable[[Ticket], Iterable[Piece]]
    started: bool = False

    @classmethod
    def open(
        cls,
        place: World,
        plans: Sequence[AttackSpec],
        budgets: Sequence[float],
        run_key: str,
        attack: Callable[[Ticket], Iterable[Piece]],
    ) -> Share:
        """The shared board, served by the leader on a free port of its host."""
        if place.leader:
            host = os.environ.get("MASTER_ADDR") or socket.getfqdn()
            board = dist.TCPStore(host, 0, None, True, WAIT, wait_for_workers=False)
            address: list[Any] = [(host, board.port)]
        else:
            address = [None]
        dist.broadcast_object_list(address, src=0)
        if not place.leader:
            host, port = address[0]
            board = dist.TCPStore(host, port, None, False, WAIT)
        return cls(place, board, plans, budgets, run_key, attack)

    # ------------------------------------------------------------------ the leader
    def fail(self, error: BaseException) -> None:
        """Tell the other ranks that the leader could not start (they raise it too)."""
        dist.broadcast_object_list([("error", f"rank 0: {error}")], src=0)

    def run(
        self, tickets: Sequence[Ticket], store: ResultStore, keep: set[int], progress: bool
    ) -> int:
        """Hand ``tickets`` out, attack chunks, and write every rank's pieces into ``store``;
        how many (attack, budget, sample) results were computed."""
        dist.broadcast_object_list([("tickets", (list(tickets), keep))], src=0)
        self.started = True
        stages = [(a, float(e)) for a in range(len(self.plans)) for e in self.budgets]
        todo = sum(t.missing(stage) for t in tickets for stage in stages)
        attacked, own, drained = 0, 0, 0
        with show_progress(todo, "evaluate", progress, unit="sample") as bar:

            def record(pieces: Iterable[Piece]) -> None:
                nonlocal attacked
                for piece in pieces:
                    write(store, self.run_key, self.plans, piece, keep)
                    attacked += len(piece.ids)
                    if piece.skipped:
                        bar.total -= piece.skipped
                        bar.refresh()
                    bar.update(len(piece.ids))

            while (k := self._claim()) < len(tickets):
                record(self.attack(tickets[k]))
                own += 1
                drained = self._drain(drained, record, wait=False)
            while own + drained < len(tickets):
                drained = self._drain(drained, record, wait=True)
        dist.barrier()  # every rank has claimed its last chunk: the board may go
        return attacked

    def _drain(self, drained: int, record: Callable[[Iterable[Piece]], None], *, wait: bool) -> int:
        """Write the pieces other ranks have posted (at least one more when ``wait``)."""
        posted = self.board.add("posted", 0)
        if wait and posted == drained:
            self.board.wait([f"post/{drained}"], WAIT)
            posted = drained + 1
        for seq in range(drained, posted):
            try:
                payload = self._take(seq)
            except RuntimeError as err:
                raise StorageError(
                    f"a rank stopped before posting its chunk ({err}); every chunk already "
                    "written is kept: run the same command again, at any number of processes, "
                    "to finish"
                ) from err
            record(_unpack(payload))
        return posted

    def _take(self, seq: int) -> bytes:
        """Post ``seq``: its parts, joined, taken off the board."""
        key = f"post/{seq}"
        self.board.wait([key], WAIT)
        count = int(self.board.get(key))
        parts = [self.board.get(f"{key}/{j}") for j in range(count)]
        for j in range(count):
            self.board.delete_key(f"{key}/{j}")
        self.board.delete_key(key)
        return b"".join(parts)

    def _post(self, payload: bytes) -> None:
        """Put ``payload`` on the board in parts the store accepts, then announce it."""
        key = f"post/{self.board.add('posted', 1) - 1}"
        parts = [payload[i : i + PART] for i in range(0, len(payload), PART)] or [b""]
        for j, part in enumerate(parts):
            self.board.set(f"{key}/{j}", part)  # type: ignore[arg-type]  # bytes are kept
        self.board.set(key, str(len(parts)))

    # ------------------------------------------------------------------ every other rank
    def follow(self) -> int:
        """Receive the tickets, attack the chunks this rank claims and post their pieces;
        how many (attack, budget, sample) results this rank computed."""
        message: list[Any] = [None]
        dist.broadcast_object_list(message, src=0)
        kind, handed = message[0]
        if kind == "error":
            raise InputError(f"the evaluation cannot start: {handed}")
        tickets, keep = handed
        attacked = 0
        try:
            while (k := self._claim()) < len(tickets):
                pieces = [piece.travelling(keep) for piece in self.attack(tickets[k])]
                attacked += sum(len(p.ids) for p in pieces)
                self._post(_pack(pieces))
        except (RuntimeError, dist.DistNetworkError) as err:
            if not isinstance(err, dist.DistNetworkError) and "Connection" not in str(err):
                raise
            raise StorageError(
                f"rank {self.world.rank} lost rank 0, the writer ({err}); every chunk already "
                "written is kept: run the same command again, at any number of processes, to "
                "finish"
            ) from err
        dist.barrier()  # the leader serves the board until every rank is past its last claim
        return attacked

    def _claim(self) -> int:
        """The next chunk's index (the shared counter)."""
        return int(self.board.add("claimed", 1)) - 1


def _pack(pieces: Sequence[Piece]) -> bytes:
    buffer = io.BytesIO()
    torch.save(pieces, buffer)
    return buffer.getvalue()


def _unpack(payload: bytes) -> list[Piece]:
    # the pieces of this job's own ranks (never a file): AttackResult and Piece are brittle's
    loaded: list[Piece] = torch.load(io.BytesIO(payload), weights_only=False)
    assert all(
        isinstance(p, Piece) and (p.result is None or isinstance(p.result, AttackResult))
        for p in loaded
    )
    return loaded
