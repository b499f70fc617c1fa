"""Randomised smoothing (Cohen, Rosenfeld & Kolter, ICML 2019): a certified L2 radius for the
*smoothed* classifier

    g(x) = argmax_c P(f(x + eps) = c),    eps ~ N(0, sigma^2 I),

built from any base classifier f. If the top class c_A has probability p_A >= p_A_lower > 1/2,
then g(x + delta) = c_A for every ||delta||_2 < R with (their Theorem 1, with p_B = 1 - p_A)

    R = sigma * Phi^-1(p_A_lower).

The certificate holds for g, not for f: the base model can be fooled well inside R.

:class:`Smoothed` runs the paper's two Monte Carlo procedures (their Algorithm 1):
:meth:`~Smoothed.predict` (PREDICT: abstain unless the top class beats the runner-up by a
two-sided binomial test at level alpha) and :meth:`~Smoothed.certify` (CERTIFY: n0 draws
select c_A, n further draws estimate p_A_lower by the one-sided Clopper-Pearson bound at level
1 - alpha, abstain when p_A_lower <= 1/2). With probability at least 1 - alpha over the draws,
a class returned by CERTIFY is g's and g is constant on the ball of the returned radius.

Every draw of noise belongs to one sample: draw ``j`` of the sample with id ``i`` is the
``j``-th block of the normals :func:`brittle.randomness.normal` gives ``(seed, i, stream)``,
so no two samples share noise (ART's bug #1617) and the counts, hence the certificates, do
not depend on the batch size or on which samples share a forward pass. Selection, estimation
and prediction draw from separate streams, as the bounds need independent draws. Many
samples times many draws go through the base model per forward pass, in chunks of
:attr:`Smoothed.rows` noisy inputs chosen from the memory at hand; the class counts stay on
the device until the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.randomness import gaussian, uniform
from brittle.threat import Norm
from brittle.validation import as_tensor, check_integer, is_integer, is_real

from .result import ABSTAIN, Certificates

PREDICT_STREAM = "smoothing-predict"
SELECT_STREAM = "smoothing-selection"
ESTIMATE_STREAM = "smoothing-estimation"

NOISE_BYTES_PER_FEATURE = 96
"""Peak bytes per input feature of drawing the noise (Philox's int64 words and products,
float64 uniforms and normals, the noisy copy): a bound used to size the chunks."""
CPU_BUDGET = 512 * 2**20
"""Bytes a chunk may take on the CPU."""
CUDA_SHARE = 0.5
"""The share of a GPU's free memory a chunk may take."""
METHOD = "randomized-smoothing"


def check_sigma(sigma: float) -> float:
    """The noise level: a finite number > 0."""
    if not is_real(sigma) or not math.isfinite(sigma):
        raise InputError(f"sigma must be a finite number > 0, got {sigma!r}")
    if sigma <= 0:
        raise InputError(
            f"sigma must be > 0, got {sigma:g}: it is the standard deviation of the Gaussian "
            "noise (Cohen et al. use 0.12 to 1.0 on [0, 1] images; try 0.25)"
        )
    return float(sigma)


def check_draws(n: int, name: str) -> int:
    """A number of noise draws: an integer >= 1."""
    if not is_integer(n) or n < 1:
        raise InputError(
            f"{name} must be a positive integer (a number of noise draws per sample), got {n!r}"
        )
    return int(n)


def check_level(alpha: float) -> float:
    """The failure probability of a certificate: a number strictly between 0 and 1."""
    if not is_real(alpha) or not 0 < alpha < 1:
        raise InputError(
            f"alpha must be in (0, 1), got {alpha!r}: it is the probability that a returned "
            "certificate is wrong (Cohen et al.: 0.001)"
        )
    return float(alpha)


def clopper_pearson_lower(successes: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """The one-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion from
    ``successes`` out of ``n``: the alpha quantile of Beta(k, n - k + 1), and 0 when k = 0
    (Clopper & Pearson 1934; the two-sided interval at level 1 - 2 alpha, lower end)."""
    k = np.asarray(successes, dtype=np.float64)
    bound = stats.beta.ppf(alpha, np.maximum(k, 1.0), n - k + 1)
    return np.where(k > 0, bound, 0.0)


def binomial_p_value(n_a: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """The two-sided p-value of n_a successes in n_a + n_b trials against p = 1/2 (PREDICT's
    test): min(1, 2 P(X <= min(n_a, n_b))), X ~ Bin(n_a + n_b, 1/2), which is what
    ``scipy.stats.binomtest`` gives for p = 1/2, vectorised."""
    n_a, n_b = np.asarray(n_a), np.asarray(n_b)
    tail = stats.binom.cdf(np.minimum(n_a, n_b), n_a + n_b, 0.5)
    return np.minimum(1.0, 2.0 * tail)


def _activation_bytes(module: nn.Module, x: Tensor) -> int:
    """Bytes of every module's output per input row, measured on the two rows ``x``."""
    total = 0

    def count(_: nn.Module, __: Any, out: Any) -> None:
        nonlocal total
        if isinstance(out, Tensor):
            total += out.numel() * out.element_size()

    hooks = [m.register_forward_hook(count) for m in module.modules()]
    try:
        module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return max(1, total // len(x))


class Smoothed:
    """The smoothed classifier g of ``base`` at noise level ``sigma`` (Cohen et al. 2019).

    Parameters
    ----------
    base:
        The base classifier f: a :class:`~brittle.classifier.Classifier` (its box and
        preprocessing apply; noise is added in input space, before the preprocessing), or an
        ``nn.Module`` returning logits of inputs in [0, 1].
    sigma:
        The standard deviation of the Gaussian noise, in input units.
    seed:
        Keys every draw with the samples' ids: the same (seed, id) gets the same noise.
    batch_size:
        Noisy inputs per forward pass; chosen from the free memory when not given
        (:attr:`rows`). It changes the speed, never the counts.

    Noisy inputs are not clipped to the box: g is defined with unclipped Gaussian noise, as
    in the paper (train the base model on the same noise, ``--defense gaussian``).
    """

    def __init__(
        self,
        base: Classifier | nn.Module,
        sigma: float,
        *,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> None:
        if isinstance(base, Classifier):
            self.base = base
        elif isinstance(base, nn.Module):
            self.base = Classifier(base)
        else:
            raise InputError(
                f"base must be a brittle Classifier or a torch.nn.Module, got {type(base).__name__}"
            )
        self.sigma = check_sigma(sigma)
        self.seed = check_integer(seed, "seed")
        if batch_size is not None:
            check_draws(batch_size, "batch_size")
        self.batch_size = batch_size

    # ------------------------------------------------------------------ the door
    def _inputs(self, x: Any, ids: Any) -> tuple[Tensor, Tensor]:
        """``x`` checked against the base's box and shape, and the ids (default 0..N-1)."""
        x = self.base.check_inputs(x)
        if len(x):
            self.base.check_outputs(x)
        if ids is None:
            ids = torch.arange(len(x))
        ids = as_tensor(ids, "ids")
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.ndim != 1:
            raise InputError(
                f"ids must be a 1-D integer tensor, one id per input; got dtype {ids.dtype} "
                f"and shape {tuple(ids.shape)}"
            )
        if len(ids) != len(x):
            raise InputError(f"ids has {len(ids)} entries for {len(x)} inputs: give one per input")
        if len(torch.unique(ids)) != len(ids):
            raise InputError(
                "ids must be distinct: a sample's id keys its noise, so two inputs with the same "
                "id would share their draws; give each input its own id"
            )
        return x, ids.to(self.base.device, torch.long)

    # ------------------------------------------------------------------ sampling
    def rows(self, x: Tensor) -> int:
        """Noisy inputs per forward pass for inputs like ``x``: ``batch_size`` when given,
        else as many as fit in :data:`CPU_BUDGET` bytes on the CPU, or in
        :data:`CUDA_SHARE` of the GPU's free memory, at :data:`NOISE_BYTES_PER_FEATURE`
        per input feature plus the base model's outputs of every layer (measured)."""
        if self.batch_size is not None:
            return self.batch_size
        device = self.base.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget = int(free * CUDA_SHARE)
        else:
            budget = CPU_BUDGET
        probe = x[:1].repeat(2, *([1] * (x.ndim - 1)))
        with torch.no_grad(), self.base.evaluation():
            layers = _activation_bytes(self.base.module, probe)
        per_row = x[0].numel() * NOISE_BYTES_PER_FEATURE + layers
        return max(1, budget // per_row)

    def counts(self, x: Tensor, ids: Tensor, n: int, stream: str) -> Tensor:
        """How often the base model gives each class under ``n`` noise draws per input:
        ``(N, classes)`` int64 on the device. ``x`` and ``ids`` are taken as checked
        (on the base's device); draw ``j`` of ``ids[i]`` is the same whatever the chunking."""
        k = self.base.num_classes or 0  # set by check_outputs, unless there is no input
        counts = torch.zeros(len(x), k, dtype=torch.long, device=x.device)
        if not len(x):
            return counts
        shape = tuple(x.shape[1:])
        dim = x[0].numel()
        width = dim + dim % 2  # even: every draw starts a Box-Muller pair
        rows = self.rows(x)
        group, step = max(1, rows // n), min(n, rows)
        with torch.no_grad(), self.base.evaluation():
            for first in range(0, len(x), group):
                xs, keys = x[first : first + group], ids[first : first + group]
                for start in range(0, n, step):
                    m = min(step, n - start)
                    normals = gaussian(uniform(self.seed, keys, stream, m * width, start * width))
                    eps = normals.view(len(keys), m, width)[..., :dim].to(x.dtype)
                    noisy = xs.unsqueeze(1) + self.sigma * eps.reshape(len(keys), m, *shape)
                    label = self.base.logits(noisy.flatten(0, 1)).argmax(1).view(len(keys), m)
                    counts[first : first + len(keys)].scatter_add_(1, label, torch.ones_like(label))
        return counts

    # ------------------------------------------------------------------ the procedures
    def predict(
        self, x: Any, ids: Any = None, n: int = 100_000, alpha: float = 0.001
    ) -> Certificates:
        """PREDICT (Cohen et al., Algorithm 1): the top class c_A of ``n`` noisy draws, or an
        abstention (label -1) unless the two-sided binomial test of n_A against n_B (the
        runner-up's count) at p = 1/2 rejects at level ``alpha``. Then c_A = g(x) with
        probability at least 1 - alpha. No radius: every radius is 0."""
        n, alpha = check_draws(n, "n"), check_level(alpha)
        x, ids = self._inputs(x, ids)
        if not len(x):
            return self._none(ids, f"{METHOD}-predict")
        top = self.counts(x, ids, n, PREDICT_STREAM).topk(2, dim=1)
        counts, label = top.values.cpu().numpy(), top.indices[:, 0]
        significant = binomial_p_value(counts[:, 0], counts[:, 1]) <= alpha
        keep = torch.as_tensor(significant, device=label.device)
        label = torch.where(keep, label, torch.full_like(label, ABSTAIN))
        radius = torch.zeros(len(x), dtype=torch.float64, device=label.device)
        return Certificates(label, radius, Norm.L2, f"{METHOD}-predict", ids.clone())

    def certify(
        self, x: Any, ids: Any = None, n0: int = 100, n: int = 100_000, alpha: float = 0.001
    ) -> Certificates:
        """CERTIFY (Cohen et al., Algorithm 1): c_A is the top class of ``n0`` selection
        draws; ``n`` estimation draws count n_A; p_A_lower is the one-sided (1 - alpha)
        Clopper-Pearson lower bound of n_A / n; the radius is sigma * Phi^-1(p_A_lower), or
        an abstention (label -1, radius 0) when p_A_lower <= 1/2.

        With probability at least 1 - alpha (per sample, over the draws), the smoothed
        classifier g is c_A on the whole L2 ball of that radius around x."""
        n0, n = check_draws(n0, "n0"), check_draws(n, "n")
        alpha = check_level(alpha)
        x, ids = self._inputs(x, ids)
        if not len(x):
            return self._none(ids, METHOD)
        selected = self.counts(x, ids, n0, SELECT_STREAM).argmax(1)
        estimate = self.counts(x, ids, n, ESTIMATE_STREAM)
        n_a = estimate.gather(1, selected[:, None])[:, 0].cpu().numpy()
        p_lower = clopper_pearson_lower(n_a, n, alpha)
        held = p_lower > 0.5
        radius = np.where(held, self.sigma * stats.norm.ppf(np.where(held, p_lower, 0.5)), 0.0)
        device = selected.device
        keep = torch.as_tensor(held, device=device)
        label = torch.where(keep, selected, torch.full_like(selected, ABSTAIN))
        return Certificates(
            label, torch.as_tensor(radius, device=device), Norm.L2, METHOD, ids.clone()
        )

    def _none(self, ids: Tensor, method: str) -> Certificates:
        """The certificates of no input."""
        empty = torch.zeros(0, dtype=torch.long, device=ids.device)
        return Certificates(empty, empty.double(), Norm.L2, method, ids)

    def __repr__(self) -> str:
        return f"Smoothed({self.base!r}, sigma={self.sigma:g}, seed={self.seed})"
