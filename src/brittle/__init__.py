"""brittle: how brittle is your classifier, and how far from the best any classifier could do."""

from brittle.classifier import Classifier
from brittle.eot import EOT
from brittle.oracle import Oracle
from brittle.threat import Capability, Goal, Norm, ThreatModel
from brittle.version import __version__

__all__ = [
    "EOT",
    "Capability",
    "Classifier",
    "Goal",
    "Norm",
    "Oracle",
    "ThreatModel",
    "__version__",
    "evaluate",
    "load_classifier",
]


def __getattr__(name: str) -> object:
    # brittle.load_classifier lives with the checkpoints (models layer) and brittle.evaluate
    # with the evaluations (eval layer); import them lazily so that the core does not import
    # the layers above it.
    if name == "load_classifier":
        from brittle.zoo.checkpoint import load_classifier

        return load_classifier
    if name == "evaluate":
        from brittle.eval.api import evaluate

        return evaluate
    raise AttributeError(f"module 'brittle' has no attribute {name!r}")
