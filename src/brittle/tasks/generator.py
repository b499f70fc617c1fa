"""``brittle generator train``: train a generator (a VAE) on a data set's training images and
save a checkpoint with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brittle.data import load_dataset
from brittle.errors import InputError
from brittle.files import check_outputs
from brittle.generators import (
    GENERATORS,
    build_generator,
    load_generator,
    save_generator,
    train_generator,
)
from brittle.generators.train import check_hyperparameters
from brittle.validation import check_positive_integer
from brittle.zoo import TrainHistory

from .common import draw, resolve_device


@dataclass(frozen=True)
class GeneratorOutcome:
    """A trained generator: where its checkpoint is, its metadata and its training history."""

    path: Path
    meta: dict[str, Any]
    history: TrainHistory


def generator_train(
    *,
    latent_dim: int = 16,
    arch: str = "vae",
    dataset: str = "auto",
    data_dir: str | Path | None = None,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    n_train: int | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> GeneratorOutcome:
    """Train generator ``arch`` with latents of dimension ``latent_dim`` on the training split
    of ``dataset`` and save it at ``out`` (default ``runs/<arch><latent_dim>.pt``).

    ``n_train`` samples (drawn with ``seed``) are used, all when ``None``. Before anything is
    loaded, the latent dimension, the architecture and the hyper-parameters are checked and
    ``out`` must be writable, a regular file or absent, not a link and not the data
    (:func:`~brittle.files.check_outputs`). The checkpoint (written atomically) records the
    data set, the number of training samples, the epochs, the seed, the final loss (the
    negative ELBO, in nats per image) and its parts, and the training recipe.
    """
    check_positive_integer(latent_dim, "--latent-dim")
    if arch not in GENERATORS:
        raise InputError(f"unknown --arch {arch!r}: use one of {', '.join(GENERATORS)}")
    check_hyperparameters(epochs, batch_size, lr, seed)
    if n_train is not None:
        check_positive_integer(n_train, "--n-train")
    default = f"runs/{arch}{latent_dim}.pt"
    path = check_outputs({"--out": out or default}, {"--data-dir": data_dir})["--out"]
    torch_device = resolve_device(device)
    data = draw(load_dataset(dataset, "train", data_dir), n_train, seed, "train", "--n-train")
    gen = build_generator(arch, latent_dim, data.input_shape, seed=seed)
    history = train_generator(
        gen,
        data.x,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=torch_device,
        progress=progress,
    )
    meta = {
        "dataset": data.name,
        "n_train": len(data),
        "epochs": epochs,
        "seed": seed,
        "final_loss": history.loss[-1],
        "final_parts": {name: values[-1] for name, values in history.parts.items()},
        "training": {"batch_size": batch_size, "lr": lr, "seconds": round(history.seconds, 3)},
    }
    saved_path = save_generator(path, gen, meta)
    _, saved = load_generator(saved_path)
    return GeneratorOutcome(path=saved_path, meta=saved, history=history)
