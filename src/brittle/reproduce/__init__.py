"""Reproductions of the papers brittle is built from: ``brittle reproduce NAME --out DIR``.

One module per paper runs the paper's experiment on the data at hand and returns a
:class:`~brittle.reproduce.report.Reproduction` (the paper's figures, ours, and the
differences of setting), which :func:`~brittle.reproduce.report.write_reproduction` writes
as ``DIR/report.json`` and ``DIR/report.html``.

:data:`REPRODUCTIONS` is the registry: adding a paper is one line there. A reproduction's
module defines ``NAME``, ``PAPER`` (title, authors, venue), ``ROW_IDS`` (its fixed row ids)
and ``run(out, *, n_images, n_second, epochs, n_train, dataset, data_dir, device, seed,
progress, log) -> Reproduction``; it is imported only when it runs, so the command line
starts without loading every paper's experiment.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from brittle.errors import InputError

from .report import Figure, Reproduction, Row, write_reproduction

REPRODUCTIONS: dict[str, str] = {
    "cohen2019": "brittle.reproduce.cohen2019",
    "fawzi2018": "brittle.reproduce.fawzi2018",
    "goodfellow2014": "brittle.reproduce.goodfellow2014",
    "papernot2016": "brittle.reproduce.papernot2016",
    "papernot2017": "brittle.reproduce.papernot2017",
    "sandwich": "brittle.reproduce.sandwich",
}
"""The reproductions by name and the module of each (``brittle reproduce NAME``)."""


def reproduction(name: str) -> ModuleType:
    """The module of the registered reproduction ``name``; an :class:`InputError` that
    lists the known ones otherwise."""
    module = REPRODUCTIONS.get(name.strip().lower())
    if module is None:
        raise InputError(
            f"unknown reproduction {name!r}: use {' or '.join(REPRODUCTIONS)} "
            f"(brittle reproduce {next(iter(REPRODUCTIONS))} --out DIR)"
        )
    return importlib.import_module(module)


__all__ = [
    "REPRODUCTIONS",
    "Figure",
    "Reproduction",
    "Row",
    "reproduction",
    "write_reproduction",
]
