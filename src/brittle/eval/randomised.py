"""An evaluation of a randomised model attacks it with EOT (:mod:`brittle.eot`).

Before any sample is attacked, :func:`settle_randomness` runs the model twice on the first
samples (no more than a batch); when the outputs differ, the model is randomised and gets ``model.eot`` (unless it
has a setting already): every gradient an attack takes is then the mean of
``eot.samples`` draws, counted in the gradients and queries spent, and every verdict is a
strict majority of ``eot.draws`` draws. The setting is recorded in the victim's metadata,
so the report's model section states it; the randomness check of the report says so too.
"""

from __future__ import annotations

from brittle.eot import EOT, use_eot_if_randomised
from brittle.eval.victim import Victim

RANDOMNESS_SAMPLES = 64
"""How many of the first samples the randomness probe runs the model on, twice."""


def settle_randomness(victim: Victim, batch_size: int, settings: EOT | None = None) -> EOT | None:
    """Turn EOT on for ``victim``'s model when two passes on its first
    :data:`RANDOMNESS_SAMPLES` samples (at most ``batch_size``: the data is never fetched in
    larger pieces) differ (``settings``, default :class:`EOT`), record the setting in
    ``victim.meta["eot"]`` and return it (``None`` for a deterministic model)."""
    x, _, _ = victim.first(min(RANDOMNESS_SAMPLES, batch_size))
    eot = use_eot_if_randomised(victim.model, x, settings)
    if eot is not None:
        victim.meta["eot"] = eot.describe()
    return eot
