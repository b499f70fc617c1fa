"""r_Z(z) = min ||r||_2 s.t. f(g(z + r)) != f(g(z)): the latent robustness of Fawzi, Fawzi &
Fawzi (NeurIPS 2018), per sample."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from brittle.attacks import PGD, DeepFool, Minimize
from brittle.attacks.base import Attack
from brittle.classifier import Classifier
from brittle.validation import check_integer

from .bisection import MAX_BISECTIONS, TOLERANCE
from .candidates import BATCH_SIZE, Rays, by_chunks, closest_change
from .estimate import RobustnessEstimate, attack_names, describe_attacks
from .inputs import check_attacks, check_latents, check_pair, check_refinement
from .latent import LatentClassifier

LATENT_RADIUS = 2.0
"""The latent PGD's largest L2 budget, in units of sqrt(d): twice the typical ||z||."""


def default_latent_attacks(latent_dim: int) -> tuple[Attack, ...]:
    """DeepFool (L2, 50 steps) and L2 PGD (20 steps, margin loss, from z) under ``Minimize``
    with budgets up to 2 sqrt(d), bisected 8 times: the latent searches of r_Z."""
    radius = LATENT_RADIUS * math.sqrt(latent_dim)
    pgd = PGD(eps=radius, steps=20, norm="l2", random_start=False, loss="margin")
    return DeepFool(norm="l2"), Minimize(pgd, tolerance=radius / 100, max_steps=8)


def latent_robustness(
    classifier: Classifier,
    generator: nn.Module,
    z: Tensor,
    *,
    attacks: Sequence[Attack] | None = None,
    random_rays: int = 16,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_BISECTIONS,
    batch_size: int = BATCH_SIZE,
) -> RobustnessEstimate:
    """r_Z(z) = min ||r||_2 s.t. f(g(z + r)) != f(g(z)), per sample.

    f o g is wrapped as a :class:`LatentClassifier` on the unbounded latent box, and each of
    ``attacks`` (default :func:`default_latent_attacks`: DeepFool, and PGD under
    ``Minimize``) runs on every sample through the attack base with y = f(g(z)); each success
    r is refined by bisection on the scale t in [0, 1] of z + t r (relative ``tolerance``),
    the smallest change along that direction; per sample the smallest verified ||r||.
    The samples no attack flipped (a generator that saturates leaves gradients with nothing
    to say) then get ``random_rays`` decision-based searches along random latent directions,
    z + t u for t = sqrt(d) / 4, doubling 6 times (up to 16 sqrt(d)), then bisected
    (:func:`ray_search`). Normalised by the mean ||z|| over the samples given.
    """
    d, _ = check_pair(classifier, generator)
    z = check_latents(z, d)
    chosen = default_latent_attacks(d) if attacks is None else attacks
    attacks = check_attacks(chosen, False, "the latent space")
    check_refinement(tolerance, max_steps, batch_size)
    model = LatentClassifier(classifier, generator)
    z = model.check_inputs(z, "z")
    ids = torch.arange(len(z), device=z.device)
    rays = Rays(check_integer(random_rays, "random_rays", low=0), math.sqrt(d) / 4, 6)

    def work(rows: slice) -> tuple[Tensor, Tensor]:
        return closest_change(model, z[rows], ids[rows], attacks, (tolerance, max_steps), rays=rays)

    values, points = by_chunks(len(z), batch_size, work)
    method = (
        f"r_Z(z) = min ||r||_2 s.t. f(g(z + r)) != f(g(z)): {attack_names(attacks)} on f o g in the "
        "unbounded latent box through brittle's attack base (successes re-verified), each "
        f"refined by bisection on t in [0, 1] along z + t r (relative tolerance {tolerance:g}); "
        f"then, for samples none flipped, {random_rays} random latent rays with bisection; "
        "per sample the smallest verified ||r||_2, inf where none"
    )
    config = {
        "attacks": describe_attacks(attacks),
        "random_rays": random_rays,
        "tolerance": tolerance,
        "max_steps": max_steps,
    }
    scale = float(z.flatten(1).norm(dim=1).mean())
    return RobustnessEstimate("r_Z", values, points, scale, "mean ||z||_2", method, config)
