"""The substitute of Papernot et al. 2017's black-box attack: a local model trained on the
target's labels of a small seed set grown by Jacobian-based dataset augmentation, to craft
adversarial examples on and transfer them to the target
(:class:`~brittle.attacks.substitute.Substitute` is the attack)."""

from .augmentation import (
    jacobian_augmentation,
    label_gradient_signs,
    new_point_count,
    reservoir,
    step_size,
    unseen,
)
from .training import HeldOut, Round, SubstituteFit, oracle_labels, train_substitute

__all__ = [
    "HeldOut",
    "Round",
    "SubstituteFit",
    "jacobian_augmentation",
    "label_gradient_signs",
    "new_point_count",
    "oracle_labels",
    "reservoir",
    "step_size",
    "train_substitute",
    "unseen",
]
