"""What an attack returns: adversarial inputs and the model's own verdict on them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class AttackResult:
    """Per-sample outcome of an attack; every tensor has one row per input.

    ``success`` comes only from running the model on ``x_adv`` and asking the ``criterion``
    (its description is kept): untargeted, the prediction differs from ``y``; targeted, it
    equals ``target``. ``l0`` is the fraction of features changed. ``gradients`` counts the
    input gradients per sample, ``queries`` every model evaluation (with or without gradient)
    the attack itself made: exactly what an attacker would have spent. The attack base's own
    clean prediction and re-check are counted apart, in ``verification_queries``.

    A non-finite model output is never a correct answer: its prediction is ``-1``, the sample
    is not robust, it meets untargeted goals, and ``nonfinite`` marks it. ``exhausted`` marks
    samples that spent their query budget without meeting the goal. ``ids`` are the samples'
    ids (which seeded their random draws). ``min_eps`` is set by
    :class:`~brittle.attacks.minimize.Minimize` only: each sample's smallest budget seen
    successful (0 if the clean input already meets the goal, ``inf`` on failure).
    """

    x_adv: Tensor
    success: Tensor
    y: Tensor
    pred_clean: Tensor
    pred_adv: Tensor
    confidence_adv: Tensor
    l0: Tensor
    l1: Tensor
    l2: Tensor
    linf: Tensor
    gradients: Tensor
    queries: Tensor
    verification_queries: Tensor
    nonfinite: Tensor
    exhausted: Tensor
    target: Tensor | None
    ids: Tensor
    attack: str
    norm: str
    criterion: str
    eps: float | None
    seconds: float
    min_eps: Tensor | None = None

    def __len__(self) -> int:
        return int(self.success.shape[0])

    @property
    def correct_clean(self) -> Tensor:
        """Which samples the model classified correctly before the attack."""
        return self.pred_clean == self.y

    @property
    def robust(self) -> Tensor:
        """Which samples are correctly classified both before and after the attack.

        So robust accuracy = clean accuracy x (1 - success rate) for an untargeted attack.
        """
        return self.correct_clean & (self.pred_adv == self.y)

    def success_rate(self) -> float:
        """Fraction of successes among samples the model got right (nan if there are none)."""
        mask = self.correct_clean
        return float(self.success[mask].float().mean()) if bool(mask.any()) else float("nan")

    def summary(self) -> dict[str, Any]:
        """Headline numbers as plain floats (the keys of ``brittle attack --json``).

        Norm statistics are over successful adversarial examples of correctly classified
        samples, the ones that count as attacks; ``nan`` when there are none. ``note`` says
        why rates are undefined (no samples, or none classified correctly), else ``None``.
        """
        n = len(self)
        wrong_adv = self.pred_adv != self.y
        counted = self.success & self.correct_clean

        def stat(values: Tensor, fn: str) -> float:
            v = values[counted]
            if not len(v):
                return float("nan")
            return float(v.mean() if fn == "mean" else v.median())

        conf = self.confidence_adv[wrong_adv & ~self.nonfinite]
        return {
            "attack": self.attack,
            "norm": self.norm,
            "criterion": self.criterion,
            "eps": self.eps,
            "n": n,
            "clean_accuracy": float(self.correct_clean.float().mean()) if n else float("nan"),
            "success_rate": self.success_rate(),
            "robust_accuracy": float(self.robust.float().mean()) if n else float("nan"),
            "mean_confidence_misclassified": float(conf.mean()) if len(conf) else float("nan"),
            "mean_l0": stat(self.l0, "mean"),
            "mean_l2": stat(self.l2, "mean"),
            "mean_linf": stat(self.linf, "mean"),
            "median_l2": stat(self.l2, "median"),
            "median_linf": stat(self.linf, "median"),
            "gradient_evaluations": int(self.gradients.sum()),
            "queries": int(self.queries.sum()),
            "note": self._note(),
            "nonfinite_outputs": int(self.nonfinite.sum()),
            "exhausted": int(self.exhausted.sum()),
            "seconds": self.seconds,
        }

    def _note(self) -> str | None:
        if not len(self):
            return "no samples: every rate is undefined (nan)"
        if not bool(self.correct_clean.any()):
            return "the model classifies no sample correctly: the success rate is undefined (nan)"
        return None

    def numpy(self) -> dict[str, Any]:
        """Every per-sample field as a numpy array (metadata as is)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.detach().cpu().numpy() if isinstance(value, Tensor) else value
        return out

    def select(self, mask: Tensor) -> AttackResult:
        """The result restricted to the samples where ``mask`` is true."""
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = value[mask] if isinstance(value, Tensor) else value
        return AttackResult(**kwargs)

    @staticmethod
    def concat(results: list[AttackResult]) -> AttackResult:
        """Join results of consecutive batches of the same attack (empty batches are skipped:
        an attack never runs on them, so they carry no optional fields such as ``min_eps``)."""
        if not results:
            raise ValueError("nothing to concatenate")
        results = [r for r in results if len(r)] or results[:1]
        first = results[0]
        kwargs: dict[str, Any] = {}
        for f in fields(first):
            values = [getattr(r, f.name) for r in results]
            tensors = [v for v in values if isinstance(v, Tensor)]
            if tensors and len(tensors) < len(values):
                raise ValueError(f"cannot join results where only some have {f.name}")
            if tensors:
                kwargs[f.name] = torch.cat(tensors)
            elif f.name == "seconds":
                kwargs[f.name] = float(np.sum(values))
            else:
                kwargs[f.name] = values[0]
        return AttackResult(**kwargs)
