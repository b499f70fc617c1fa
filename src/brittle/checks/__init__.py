"""Every check brittle makes, in one place, and the catalogue of what each flags.

- :mod:`~brittle.checks.inputs` and :mod:`~brittle.checks.outputs`: the door of every
  attacked model (inputs, labels, logits, gradients, an oracle's answers): an error before
  any work is spent.
- :mod:`~brittle.checks.sweep`: what an evaluation's numbers must satisfy (robust accuracy
  never rises with the budget, finite outputs, the model's recorded accuracy).
- :mod:`~brittle.checks.probes`: the checks that query the model on the first samples (Athalye
  et al. 2018, Croce & Hein 2020): single step, unbounded budget, noise, gradients,
  randomness, black box against white box.
- :mod:`~brittle.checks.masking` and :mod:`~brittle.checks.defended`: the gradient-masking
  check of a defended model.

:data:`~brittle.checks.catalogue.FLAGS` lists every flag with what it means and what to do;
the documentation's checks page is made from it. This package imports only its light
modules: the checks that run attacks are imported by their module's name.
"""

from .catalogue import FLAGS, Flag
from .outcome import NOT_RUN, PASSED, WARNING, SanityCheck, Status

__all__ = ["FLAGS", "NOT_RUN", "PASSED", "WARNING", "Flag", "SanityCheck", "Status"]
