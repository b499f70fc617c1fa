"""An evaluation of a randomised model attacks it with EOT (:mod:`brittle.eot`).

Before any sample is attacked, :func:`settle_randomness` runs the model twice on the first
samples (no more than a batch); when the outputs differ, the model is randomised and gets ``model.eot`` (unless it
has a setting already): every gradient an attack takes is then the mean of
``eot.samples`` draws, counted in the gradients and queries spent, and every verdict is a
strict majority of ``eot.draws`` draws. The setting is recorded in the target's metadata,
so the report's model section states it; the randomness check of the report says so too.
"""

from __future__ import annotations

from brittle.eot import EOT, use_eot_if_randomised

from .target import Target

RANDOMNESS_SAMPLES = 64
"""How many of the first samples the randomness probe runs the model on, twice."""


def settle_randomness(target: Target, batch_size: int, settings: EOT | None = None) -> EOT | None:
    """Turn EOT on for ``target``'s model when two passes on its first
    :data:`RANDOMNESS_SAMPLES` samples (at most ``batch_size``: the data is never fetched in
    larger pieces) differ (``settings``, default :class:`EOT`), record the setting in
    ``target.meta["eot"]`` and return it (``None`` for a deterministic model)."""
    x, _, _ = target.first(min(RANDOMNESS_SAMPLES, batch_size))
    eot = use_eot_if_randomised(target.model, x, settings)
    if eot is not None:
        target.meta["eot"] = eot.describe()
    return eot
