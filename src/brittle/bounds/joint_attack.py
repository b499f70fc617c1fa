"""Theorem 3 of Fawzi, Fawzi & Fawzi (NeurIPS 2018) measured: how often one small
perturbation changes the labels of two classifiers at once, found by an attack on both
(:func:`common_perturbation_share`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from brittle.attacks.cw import margin
from brittle.attacks.fgsm import steepest_ascent
from brittle.attacks.iterative import random_offset
from brittle.classifier import Classifier
from brittle.perturbation import broadcast_view, project, within_budget
from brittle.randomness import per_sample
from brittle.threat import Norm
from brittle.validation import check_positive, check_positive_integer

from .candidates import BATCH_SIZE, by_chunks
from .inputs import check_pair
from .latent import LatentClassifier, sample_latents


def _joint_ascent(
    models: tuple[Classifier, Classifier],
    x: Tensor,
    labels: tuple[Tensor, Tensor],
    start: Tensor,
    eta: float,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """L2 PGD on both models' clamped margins at once; (points, whether both changed).

    Ascends -(max(m_f, 0) + max(m_h, 0)), m the margin of each model's clean label (positive
    while the label holds): a model already fooled stops pulling. alpha = 2.5 eta / steps,
    steps along grad / ||grad||_2, projection onto the eta-ball and the box. A sample stops
    at the first iterate where both labels changed (the logits of its gradient pass).
    """
    f, h = models
    alpha = 2.5 * eta / steps
    out, met = start.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    pos, point = torch.arange(len(x), device=x.device), start
    with f.evaluation(), h.evaluation():
        for _ in range(steps):
            w = point.detach().requires_grad_(True)
            with torch.enable_grad():
                m_f = margin(f.logits(w), labels[0][pos], targeted=False)
                m_h = margin(h.logits(w), labels[1][pos], targeted=False)
                (grad,) = torch.autograd.grad(-(m_f.clamp_min(0) + m_h.clamp_min(0)).sum(), w)
            both = (m_f.detach() < 0) & (m_h.detach() < 0)
            out[pos] = torch.where(broadcast_view(both, w), w.detach(), out[pos])
            met[pos] |= both
            going = (~both).nonzero().squeeze(1)
            if not len(going):
                break
            pos, w, grad = pos[going], w.detach()[going], grad[going]
            stepped = w + alpha * steepest_ascent(grad, Norm.L2)
            point = project(x[pos], stepped, Norm.L2, eta, f.bounds)
    return out, met


def _joint_attack(
    models: tuple[Classifier, Classifier],
    x: Tensor,
    labels: tuple[Tensor, Tensor],
    eta: float,
    settings: tuple[int, int, int],
    ids: Tensor,
) -> Tensor:
    """:func:`_joint_ascent` from x, then from random points of the eta-ball (drawn per
    sample id) on the samples not yet fooled twice; per sample a point that fooled both."""
    steps, restarts, seed = settings
    best, done = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    draw = random_offset(Norm.L2, x[0].numel())
    for restart in range(restarts):
        todo = (~done).nonzero().squeeze(1)
        if not len(todo):
            break
        start = x[todo]
        if restart:
            u = per_sample(seed, ids[todo], ("joint", restart), draw, x.device).to(x.dtype)
            start = models[0].clip(start + eta * u.view_as(start))
        rows = (labels[0][todo], labels[1][todo])
        points, met = _joint_ascent(models, x[todo], rows, start, eta, steps)
        best[todo] = torch.where(broadcast_view(met, points), points, best[todo])
        done[todo] = met
    return best


def common_perturbation_share(
    f: Classifier,
    h: Classifier,
    generator: nn.Module,
    n: int,
    eta: float,
    *,
    seed: int = 0,
    steps: int = 100,
    restarts: int = 1,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Theorem 3 measured: how often one v with ||v||_2 <= eta changes both f's and h's labels.

    At ``n`` samples x = g(z), z ~ N(0, I) (``seed``): ``delta`` = the share where f(x) !=
    h(x) (the theorem's P(f(g(z)) != h(g(z)))), and ``share`` = the share where an attack on
    both at once found such a v (verified: both models' labels at x + v differ from theirs at
    x, ||v|| <= eta). The attack is a small L2 PGD loop on the sum of both models' clamped
    margin losses (:func:`_joint_ascent`), from x and ``restarts - 1`` random starts in the
    ball, in f's box: brittle's PGD judges one model's label, and a module cannot carry two
    labels per sample through an attack that compacts its batch. Compare ``share`` with the
    theorem's lower bound 1 - sqrt(pi/2) exp(-omega^-1(eta)^2 / 2) - 2 delta.
    """
    d, _ = check_pair(f, generator)
    check_pair(h, generator)
    eta = check_positive(eta, "eta")
    settings = (
        check_positive_integer(steps, "steps"),
        check_positive_integer(restarts, "restarts"),
        seed,
    )
    check_positive_integer(batch_size, "batch_size")
    z = sample_latents(n, d, seed)
    x = f.check_inputs(LatentClassifier(f, generator).images(z))
    labels = (f.predict(x), h.predict(x))
    ids = torch.arange(n, device=x.device)

    def work(rows: slice) -> tuple[Tensor]:
        chunk = (labels[0][rows], labels[1][rows])
        return (_joint_attack((f, h), x[rows], chunk, eta, settings, ids[rows]),)

    (points,) = by_chunks(n, batch_size, work)
    both = (f.predict(points) != labels[0]) & (h.predict(points) != labels[1])
    both &= within_budget(points - x, Norm.L2, eta)
    return {
        "n": n,
        "eta": eta,
        "seed": seed,
        "delta": float((labels[0] != labels[1]).float().mean()),
        "share": float(both.float().mean()),
        "found": int(both.sum()),
        "method": (
            "L2 PGD on -(max(m_f, 0) + max(m_h, 0)) within ||v||_2 <= eta, "
            f"{steps} steps of 2.5 eta / steps, {restarts} start(s) (x, then random in the "
            "ball); a sample counts when both labels at x + v differ from theirs at x"
        ),
    }
