"""What each process of tests/test_distributed_training.py runs (a module of its own, so that
the spawned processes import no more than the training needs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from brittle.data import load_dataset
from brittle.defenses import FGSMTraining, NoiseTraining, PGDTraining
from brittle.distributed import from_leader, together
from brittle.errors import DataError, InputError, StorageError
from brittle.zoo import build_model, train_model

SAMPLES, BATCH, EPOCHS = 128, 32, 2
"""Each run: 4 steps an epoch on 128 digits, global batch 32 (16 rows a process)."""
RUNS: dict[str, Callable[[], Any]] = {
    "plain": lambda: None,
    "fgsm": lambda: FGSMTraining(0.1, alpha=0.5),
    "pgd": lambda: PGDTraining(0.1, steps=3),
    "pgd-l2": lambda: PGDTraining(1.0, steps=2, norm="l2", alpha=0.3),
    "noise": lambda: NoiseTraining(0.2, kind="uniform"),
}
"""The objectives compared, each a fresh object per run (some count their steps)."""


def train(name: str) -> dict[str, Any]:
    """Train the MLP with objective ``name`` in this process's world; what it learnt."""
    data = load_dataset("digits", "train")
    model = build_model("mlp", data.input_shape, len(data.classes), seed=0)
    history = train_model(
        model,
        data.x[:SAMPLES],
        data.y[:SAMPLES],
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=1,
        l1=1e-4 if name == "fgsm" else 0.0,
        progress=False,
        objective=RUNS[name](),
    )
    return {
        "steps": history.step_loss,
        "loss": history.loss,
        "parts": history.parts,
        "processes": history.processes,
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
    }


def _refusal(work: Callable[[], object]) -> tuple[str, str]:
    """The kind and message of the brittle error ``work`` raises."""
    try:
        work()
    except (InputError, DataError, StorageError) as err:
        return type(err).__name__, str(err)
    raise AssertionError("no error")


def _blind(rank: int) -> None:
    """Rank 1 cannot read the data."""
    with together("loading the data"):
        if rank == 1:
            raise DataError("digits cannot be read here")


def _full_disk() -> None:
    raise StorageError("cannot write m.pt: the disk is full")


def worker(rank: int, size: int, folder: Path) -> None:
    """Rank ``rank`` of ``size``: every run, then the refusals; its findings to a file."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=size
    )
    try:
        found: dict[str, Any] = {name: train(name) for name in RUNS}
        data = load_dataset("digits", "train")
        x = data.x[:SAMPLES].clone()
        x[0, 0, 0, 0] += 0.5 * rank  # rank 1's data differ in one pixel
        model = build_model("softmax", data.input_shape, 10, seed=0)
        found["disagree"] = _refusal(
            lambda: train_model(model, x, data.y[:SAMPLES], epochs=1, progress=False)
        )
        found["blind"] = _refusal(lambda: _blind(rank))
        found["leader"] = _refusal(lambda: from_leader(_full_disk))
        torch.save(found, folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
