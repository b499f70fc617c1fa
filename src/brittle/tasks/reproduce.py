"""``brittle reproduce NAME``: run a paper's experiment and write its report.

The name is checked first, the output folder is checked to be writable and locked
(:func:`~brittle.eval.lock.folder_lock`) before any work, and the report is written
atomically (:func:`~brittle.reproduce.report.write_reproduction`). What a reproduction
trains it caches in the folder, so that the same command run again does not retrain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from brittle.eval.lock import folder_lock
from brittle.files import check_outputs
from brittle.report.html import ReportPaths
from brittle.reproduce import REPRODUCTIONS, Reproduction, reproduction, write_reproduction
from brittle.reproduce.report import HTML_NAME, JSON_NAME
from brittle.validation import check_positive_integer

from .common import Log, quiet, resolve_device

REPRODUCTION_NAMES = tuple(REPRODUCTIONS)
"""The names ``brittle reproduce`` takes."""


@dataclass(frozen=True)
class ReproduceOutcome:
    """A reproduction, where its report was written and how long it took."""

    reproduction: Reproduction
    paths: ReportPaths
    seconds: float


def reproduce(
    name: str,
    out: str | Path,
    *,
    n_images: int | None = None,
    n_second: int | None = None,
    epochs: int | None = None,
    n_train: int | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log: Log = quiet,
) -> ReproduceOutcome:
    """Run the reproduction ``name`` into ``out``: ``out/report.json`` and ``out/report.html``.

    ``n_images`` (the main model's attacked test images), ``n_second`` (the second model's),
    ``epochs`` and ``n_train`` (training images, default all) default to the paper's setting
    as the reproduction defines it. ``dataset`` defaults to MNIST when found (``data_dir``
    or ``$BRITTLE_DATA/mnist``), else the bundled digits, which the report then says.
    """
    entry = reproduction(name)
    for value, option in (
        (n_images, "--n-images"),
        (n_second, "--n-second"),
        (epochs, "--epochs"),
        (n_train, "--n-train"),
    ):
        if value is not None:
            check_positive_integer(value, option)
    folder = Path(out)
    check_outputs(
        {f"--out ({name})": folder / name for name in (JSON_NAME, HTML_NAME)},
        {"--data-dir": data_dir},
    )
    torch_device = resolve_device(device)
    start = time.perf_counter()
    with folder_lock(folder):
        found = entry.run(
            folder,
            n_images=n_images,
            n_second=n_second,
            epochs=epochs,
            n_train=n_train,
            dataset=dataset,
            data_dir=data_dir,
            device=torch_device,
            seed=seed,
            progress=progress,
            log=log,
        )
        paths = write_reproduction(folder, found, entry.ROW_IDS)
    return ReproduceOutcome(reproduction=found, paths=paths, seconds=time.perf_counter() - start)
