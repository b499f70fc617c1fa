"""Data-parallel training (``torch.distributed``, gloo on the CPU).

Two processes whose global batch is one process's batch take the one-process steps: the
loss curve and the weights agree within float tolerance, for plain training and for FGSM,
PGD and noise training (their random draws are the one-process draws of the same rows);
the processes end with the same weights; rank 0 alone writes the checkpoint, which loads.
Processes that disagree on the data, a global batch the processes cannot share, and a
process that fails before training are refused on every process with one message.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch.distributed.run import get_args_parser

from brittle import tasks
from brittle.cli import build_parser, main
from brittle.distributed import World
from brittle.errors import InputError
from brittle.zoo import load_checkpoint
from brittle.zoo.sharding import BatchShare, ShardedBatches, batch_rand, sharing
from distributed_training_worker import BATCH, EPOCHS, RUNS, SAMPLES, train, worker

TIMEOUT = 240
TRAIN_TASK = importlib.import_module("brittle.tasks.train")
spawns = pytest.mark.slow
"""Tests that start processes (a few seconds each on an idle machine)."""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What each of two spawned processes found."""
    folder = tmp_path_factory.mktemp("ddp")
    job = mp.start_processes(worker, args=(2, folder), nprocs=2, join=False)
    try:
        for _ in range(TIMEOUT):
            if job.join(timeout=1):
                break
        else:
            raise AssertionError(f"the two processes did not finish in {TIMEOUT} s")
    finally:
        for process in job.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> dict[str, dict[str, Any]]:
    """Every run in this process, a world of one."""
    return {name: train(name) for name in RUNS}


@spawns
@pytest.mark.parametrize("name", list(RUNS))
def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(
    two_processes: list[dict[str, Any]], one_process: dict[str, dict[str, Any]], name: str
) -> None:
    alone, first = one_process[name], two_processes[0][name]
    assert first["processes"] == 2 and alone["processes"] == 1
    assert len(first["steps"]) == len(alone["steps"]) == EPOCHS * SAMPLES // BATCH
    assert first["steps"] == pytest.approx(alone["steps"], rel=1e-5, abs=1e-6)
    assert first["loss"] == pytest.approx(alone["loss"], rel=1e-5, abs=1e-6)
    estimated = name == "pgd"  # alpha 0: the clean loss is estimated on each process's rows
    for part, values in alone["parts"].items():
        if not (estimated and part == "clean"):
            assert first["parts"][part] == pytest.approx(values, rel=1e-5, abs=1e-6), part
    for key, value in alone["weights"].items():
        torch.testing.assert_close(first["weights"][key], value, rtol=1e-4, atol=1e-5)


@spawns
@pytest.mark.parametrize("name", list(RUNS))
def test_the_processes_end_with_the_same_weights_and_curve(
    two_processes: list[dict[str, Any]], name: str
) -> None:
    first, second = (found[name] for found in two_processes)
    assert second["steps"] == first["steps"] and second["loss"] == first["loss"]
    for key, value in first["weights"].items():
        assert torch.equal(second["weights"][key], value), key


@spawns
def test_processes_that_disagree_on_the_data_are_refused_on_both(
    two_processes: list[dict[str, Any]],
) -> None:
    for found in two_processes:
        kind, message = found["disagree"]
        assert kind == "InputError"
        assert "disagree on the training" in message and "SHA-256" in message


def test_a_global_batch_the_processes_cannot_share_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TRAIN_TASK, "join", lambda device: (World(0, 2), device))
    monkeypatch.setattr(TRAIN_TASK, "load_dataset", _never)
    with pytest.raises(InputError, match=r"batch size 33 .*not divisible by the 2 .*32 or 34"):
        tasks.train(arch="softmax", dataset="digits", batch_size=33, out=tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


def _never(*args: object) -> None:
    raise AssertionError("the data were loaded")


@spawns
def test_a_process_that_fails_stops_the_others_with_its_message(
    two_processes: list[dict[str, Any]],
) -> None:
    assert two_processes[1]["blind"] == ("DataError", "digits cannot be read here")
    assert two_processes[0]["blind"] == (
        "DataError",
        "rank 1 stopped while loading the data: digits cannot be read here",
    )
    assert two_processes[0]["leader"] == ("StorageError", "cannot write m.pt: the disk is full")
    assert two_processes[1]["leader"] == (
        "StorageError",
        "rank 0 stopped: cannot write m.pt: the disk is full",
    )


def test_the_ranks_slices_of_a_step_make_the_one_process_batch() -> None:
    alone = ShardedBatches(96, 24, seed=5)
    ranks = [ShardedBatches(96, 24, seed=5, world=World(rank, 3)) for rank in range(3)]
    for _ in range(2):
        steps, shares = alone.epoch(), [r.epoch() for r in ranks]
        assert [len(s) for s in shares] == [len(steps)] * 3 == [len(alone)] * 3
        for k, batch in enumerate(steps):
            assert torch.equal(torch.cat([share[k] for share in shares]), batch)


def test_every_rank_takes_the_same_steps_and_no_sample_twice() -> None:
    ranks = [ShardedBatches(103, 12, seed=0, world=World(rank, 3)) for rank in range(3)]
    assert [len(r) for r in ranks] == [8, 8, 8]
    left_out = []
    for _ in range(3):
        shares = [r.epoch() for r in ranks]
        assert all(len(step) == 4 for share in shares for step in share)
        seen = torch.cat([step for share in shares for step in share]).tolist()
        assert len(seen) == len(set(seen)) == 96
        left_out.append(set(range(103)) - set(seen))
    assert all(len(s) == 7 for s in left_out) and left_out[0] != left_out[1]


def test_one_process_keeps_the_partial_last_batch() -> None:
    steps = ShardedBatches(103, 12, seed=0).epoch()
    assert [len(s) for s in steps] == [12] * 8 + [7]
    assert sorted(torch.cat(steps).tolist()) == list(range(103))


def test_a_global_batch_the_processes_cannot_take_is_refused() -> None:
    with pytest.raises(InputError, match=r"more than the 10 training samples.*at most 10"):
        ShardedBatches(10, 12, seed=0, world=World(0, 2))
    with pytest.raises(InputError, match=r"not divisible by the 4 processes.*e\.g\. 8 or 12"):
        ShardedBatches(100, 10, seed=0, world=World(1, 4))


def test_batch_rand_gives_each_process_the_rows_one_process_draws() -> None:
    cpu = torch.device("cpu")
    uniform = torch.rand(6, 3, generator=torch.Generator().manual_seed(9))
    normal = torch.randn(6, 3, generator=torch.Generator().manual_seed(9))
    for start in (0, 2, 4):
        with sharing(BatchShare(start, 6, torch.Generator().manual_seed(9))):
            assert torch.equal(batch_rand((2, 3), device=cpu), uniform[start : start + 2])
        with sharing(BatchShare(start, 6, torch.Generator().manual_seed(9))):
            drawn = batch_rand((2, 3), device=cpu, normal=True)
            assert torch.equal(drawn, normal[start : start + 2])


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
TRAIN = ["train", "--arch", "softmax", "--dataset", "digits", "--epochs", "1"]
RECIPE = ["--batch-size", "32", "--n-train", "128", "--defense", "pgd", "--eps", "0.1"]


@spawns
def test_torchrun_trains_with_pgd_and_rank_0_alone_writes_the_checkpoint(
    tmp_path: Path,
) -> None:
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    command = [*TORCHRUN, "2", "-m", "brittle", *TRAIN, *RECIPE, "--steps", "2"]
    done = subprocess.run(
        [*command, "--out", str(two / "softmax.pt"), "--quiet"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("checkpoint:") == 1 and "on 2 processes" in done.stdout
    assert [p.name for p in two.iterdir()] == ["softmax.pt"]  # one file, nothing left over
    model, meta = load_checkpoint(two / "softmax.pt")
    assert meta["training"]["processes"] == 2 and meta["defense"]["name"] == "pgd"
    argv = [*TRAIN, *RECIPE, "--steps", "2", "--out", str(one / "softmax.pt"), "--quiet"]
    assert main(argv) == 0
    alone, alone_meta = load_checkpoint(one / "softmax.pt")
    assert alone_meta["training"]["processes"] == 1
    for (key, value), other in zip(
        alone.state_dict().items(), model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-5, msg=key)
    assert alone_meta["accuracy"] == pytest.approx(meta["accuracy"], abs=1 / 360)


def test_the_docs_torchrun_training_line_reaches_brittle_whole() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    start = page.index("$ torchrun --nproc-per-node 2 -m brittle train") + 2
    line = page[start : page.index("\n```", start)].replace("\\\n", " ").split()
    args = get_args_parser().parse_args(line[1:])
    assert args.nproc_per_node == "2" and args.module and args.training_script == "brittle"
    parsed = build_parser().parse_args(args.training_script_args)
    assert (parsed.defense, parsed.steps, parsed.batch_size) == ("pgd", 7, 128)
