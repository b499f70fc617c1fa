"""What the tasks share: the model and samples they attack, opened from command-line options.

Messages name the command-line options (``--n``, ``--dataset``, ...) because the tasks are
what the ``brittle`` command runs; the keyword arguments of the task functions carry the
same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brittle.data import Dataset, Limits
from brittle.errors import InputError
from brittle.eval.pipeline import Log, quiet
from brittle.eval.spec import DEFAULT_BATCH_SIZE, DEFAULT_N, DataRef, ModelRef
from brittle.eval.victim import Victim, open_victim, resolve_device
from brittle.validation import check_positive_integer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_N",
    "Log",
    "ModelOptions",
    "Victim",
    "default_device",
    "draw",
    "load_victim",
    "model_ref",
    "quiet",
    "resolve_device",
]


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return resolve_device(None).type


@dataclass(frozen=True)
class ModelOptions:
    """How to read a model file that is not a brittle checkpoint: the ``weights`` of a
    ``file.py:factory``, the per-channel ``preprocess`` (mean, std) and the ``classes``; and
    the reduced precision ``amp`` of the crafting forward passes."""

    weights: str | Path | None = None
    preprocess: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    classes: tuple[str, ...] | None = None
    amp: str | None = None


def model_ref(model: str | Path, options: ModelOptions | None = None) -> ModelRef:
    """The :class:`~brittle.eval.spec.ModelRef` of ``--model`` and its options."""
    options = options or ModelOptions()
    return ModelRef(
        spec=str(model),
        weights=None if options.weights is None else str(options.weights),
        preprocess=options.preprocess,
        classes=options.classes,
        amp=options.amp,
    )


def load_victim(
    model: str | Path,
    dataset: str | None,
    data_dir: str | Path | None,
    split: str,
    n: int | None,
    seed: int,
    device: str | None,
    options: ModelOptions | None = None,
    limits: Limits | None = None,
) -> Victim:
    """The model at ``model`` and ``n`` samples (drawn with ``seed``) of ``split``.

    ``dataset=None`` uses the data set the model records; ``n=None`` draws
    :data:`~brittle.eval.spec.DEFAULT_N` samples, or the whole split when it holds fewer.
    ``n`` is checked before anything is loaded.
    """
    data = DataRef(dataset, None if data_dir is None else str(data_dir), split, n, limits)
    return open_victim(model_ref(model, options), data, seed=seed, device=device)


def draw(
    data: Dataset, n: int | None, seed: int, split: str, option: str, default: int | None = None
) -> Dataset:
    """``n`` samples of ``data`` drawn with ``seed``.

    ``n=None`` draws ``default`` samples, or all when the split holds fewer (all, shuffled,
    when ``default`` is None too). Asking for more samples than the split holds is refused,
    with how many there are: silently using fewer would report numbers on another sample
    size than the one asked for.
    """
    if n is None:
        return data.subset(None if default is None else min(default, len(data)), seed)
    if check_positive_integer(n, option) > len(data):
        raise InputError(
            f"{option} {n} is more than the {len(data)} samples of the {split} split of "
            f"{data.name}; give {option} {len(data)} or less"
        )
    return data.subset(n, seed)
