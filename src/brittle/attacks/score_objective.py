"""What the score-based attacks lower: a margin of log probabilities, from scores alone."""

from __future__ import annotations

import math

from torch import Tensor

from brittle.threat import Goal

from .base import AttackRun


def score_objective(run: AttackRun, scores: Tensor, rows: Tensor) -> Tensor:
    """o(x') to lower, from the scores at the rows ``rows`` of the run.

    Untargeted: log p_y - max_{j != y} log p_j; targeted: max_{j != t} log p_j - log p_t;
    confidence reduction: log p_y. The margins reach 0 exactly at the decision boundary, do
    not saturate when p_y rounds to 1, and on logits equal the logit margin
    z_y - max_{j != y} z_j (the log-softmax shifts every logit by the same amount). Scores are
    logits or probabilities: both give log probabilities.
    """
    logp = run.access.log_probabilities(scores)
    labels = run.labels[rows]
    own = logp.gather(1, labels[:, None]).squeeze(1)
    if run.criterion.goal is Goal.CONFIDENCE_REDUCTION:
        return own
    other = logp.scatter(1, labels[:, None], -math.inf).amax(1)
    return other - own if run.targeted else own - other
