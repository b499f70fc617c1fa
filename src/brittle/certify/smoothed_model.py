"""The smoothed classifier as a model attacks run on and an evaluation certifies.

:class:`SmoothedClassifier` is a :class:`~brittle.classifier.Classifier` whose every forward
pass adds fresh Gaussian noise to its input before the base network f:

    f_eps(x) = f(x + eps),    eps ~ N(0, sigma^2 I),

so it is a randomised model (:mod:`brittle.eot`), and it certifies itself with
:class:`~brittle.certify.smoothing.Smoothed` (Cohen, Rosenfeld & Kolter 2019) for the same
base and sigma. An evaluation (``brittle.evaluate(..., certify=True)``) then attacks it with
EOT and puts the certified radius of the smoothed classifier

    g(x) = argmax_c P(f(x + eps) = c)

below the smallest perturbation found: the sandwich for g.

What the attack measures. With EOT, each gradient is the mean of ``eot.samples`` noisy
gradients: a Monte Carlo estimate of the gradient of E_eps[L(f(x + eps), y)], the expectation
Salman et al. (NeurIPS 2019) attack (their SmoothAdv uses the soft classifier's
log E[softmax f(x + eps)] instead). The attack base's verdicts (the clean prediction and the
re-check of every returned input, :meth:`predict_scores`) are g's vote: the class counts of
``votes`` noisy passes, the top count deciding. That is an estimate of g's answer, without
the significance test of :meth:`Smoothed.predict`: near g's boundary it can err, so an input
g still classifies right by a small margin may count as adversarial. With as many votes as
the certificate's estimation draws (the default), such an input lies farther than the
certified radius unless the vote errs by about as much as the Clopper-Pearson bound allows
(probability of the order of alpha): for ||d|| < R, Phi^-1(P(f(x + d + eps) = c_A)) >=
Phi^-1(p_A) - ||d|| / sigma > Phi^-1(p_A) - Phi^-1(p_A_lower) (Salman et al.'s Lemma 1).
Fewer votes are cheaper and err more often; the sandwich check then flags the samples.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.eot import EOT

from .result import Certificates
from .smoothing import Smoothed, check_draws, check_level


class SmoothedClassifier(Classifier):
    """The smoothed classifier of ``base`` at noise level ``sigma``, as an attackable model.

    Parameters
    ----------
    base:
        The base classifier f: a :class:`~brittle.classifier.Classifier` (its box,
        preprocessing, mode and ``amp`` apply; the noise is added in input space, before the
        preprocessing) or an ``nn.Module`` returning logits of inputs in [0, 1].
    sigma:
        The standard deviation of the Gaussian noise, in input units.
    seed, batch_size:
        Those of :class:`~brittle.certify.smoothing.Smoothed` (the certificates' noise is
        keyed by (seed, sample id); ``batch_size`` noisy inputs per certifying pass).
    n0, n, alpha:
        What :meth:`certify` uses by default: selection draws, estimation draws and the
        failure probability of each certificate (Cohen et al.: 100, 100,000, 0.001).
    votes:
        Noisy passes of each verdict (:meth:`predict_scores`); default ``n``.
    eot:
        How attacks treat the noise (:class:`~brittle.eot.EOT`): draws per gradient, and
        verdicts per judgement (a strict majority of votes deciding); default ``EOT(20, 1)``,
        one vote of ``votes`` passes. Kept by the evaluation's randomness probe.

    The forward passes (:meth:`logits`, hence :meth:`predict` and every attack's gradient
    and score query) are single draws of f(x + eps), the noise drawn with ``torch.randn_like`` on the model's
    device from torch's default generator (which an attack seeds, :func:`brittle.eot.
    model_randomness`). The noise is not clipped to the box, as in :class:`Smoothed`. Use
    :meth:`certify`, or :attr:`smoothed`'s ``predict`` (with its test), for g's answers.
    """

    def __init__(
        self,
        base: Classifier | nn.Module,
        sigma: float,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        votes: int | None = None,
        eot: EOT | None = None,
    ) -> None:
        smoothed = Smoothed(base, sigma, seed=seed, batch_size=batch_size)
        f = smoothed.base
        low, high = f.bounds
        bounds: Any = (
            (low.cpu(), high.cpu())
            if isinstance(low, Tensor) and isinstance(high, Tensor)
            else (low, high)
        )
        super().__init__(
            f.module,
            bounds=bounds,
            num_classes=f.num_classes,
            input_shape=f.input_shape,
            device=f.device,
            outputs=f.outputs,
            mode=f.mode,
            amp=f.amp,
        )
        self.smoothed = smoothed
        """The certifier of g (:class:`Smoothed`, the same base and sigma)."""
        self.base = f
        self.sigma = smoothed.sigma
        self.n0, self.n = check_draws(n0, "n0"), check_draws(n, "n")
        self.alpha = check_level(alpha)
        self.votes = self.n if votes is None else check_draws(votes, "votes")
        self.eot = eot if eot is not None else EOT(draws=1)

    def _preprocess(self, x: Tensor) -> Tensor:
        """``x`` plus one draw of N(0, sigma^2 I) per input, then the base's preprocessing."""
        return self.base._preprocess(x + self.sigma * torch.randn_like(x))

    def predict_scores(self, x: Tensor) -> Tensor:
        """g's vote on ``x``, as the attack base's verdicts read it: per input, the log of
        (count + 1) / (votes + K), the counts of each class among :attr:`votes` draws of
        f(x + eps), in eval mode at the module's precision. Its argmax is g's Monte Carlo
        prediction (ties to the lower class); the Laplace term keeps the scores finite."""
        k = self.num_classes or self.predict_logits(x[:1]).shape[1]
        counts = torch.zeros(len(x), k, dtype=torch.long, device=x.device)
        step = max(1, self.smoothed.rows(x) // max(len(x), 1)) if len(x) else 1
        shape = tuple(x.shape[1:])
        with self.evaluation(), torch.no_grad():
            for start in range(0, self.votes if len(x) else 0, step):
                m = min(step, self.votes - start)
                noisy = x.unsqueeze(1) + self.sigma * torch.randn(
                    len(x), m, *shape, dtype=x.dtype, device=x.device
                )
                scores = self.base._logits(noisy.flatten(0, 1), None)
                label = scores.argmax(1).view(len(x), m)
                counts.scatter_add_(1, label, torch.ones_like(label))
        return torch.log((counts + 1.0) / (self.votes + k)).to(self.dtype)

    def certify(
        self,
        x: Any,
        ids: Any = None,
        n0: int | None = None,
        n: int | None = None,
        alpha: float | None = None,
    ) -> Certificates:
        """CERTIFY (Cohen et al., Algorithm 1) for g: :meth:`Smoothed.certify` with this
        model's ``n0``, ``n`` and ``alpha`` unless given. With probability at least
        1 - alpha per sample, g is the returned class on the L2 ball of the returned radius
        (label -1, radius 0: an abstention)."""
        return self.smoothed.certify(
            x,
            ids,
            n0=self.n0 if n0 is None else n0,
            n=self.n if n is None else n,
            alpha=self.alpha if alpha is None else alpha,
        )

    def __repr__(self) -> str:
        return f"SmoothedClassifier({self.base!r}, sigma={self.sigma:g})"
