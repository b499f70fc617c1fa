"""``brittle bound``: Theorem 1's bound on robustness for a classifier on a generator's data,
beside the classifier's measured r_Z, r_in and r_unc; a JSON file and an HTML page beside it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from brittle.bounds.analysis import DEFAULT_SAMPLES, Bound, BoundAnalysis, analyse
from brittle.bounds.plots import bound_cdf_plot, bound_vs_classes_plot
from brittle.bounds.projected import theorem2_check
from brittle.bounds.robustness import check_pair
from brittle.bounds.theorems import in_distribution_bound
from brittle.bounds.transferability import theorem3_check
from brittle.classifier import Classifier
from brittle.errors import InputError
from brittle.files import check_outputs, write_text_atomic
from brittle.generators import GeneratorSummary, load_generator, summarise_generator
from brittle.loading import load_model
from brittle.report.content import write_json
from brittle.validation import check_positive_integer, is_real
from brittle.version import __version__

from .common import resolve_device

_HTML = "--json's HTML page (--json with .html)"
"""The name of the page written beside the JSON, in the messages about its place."""


@dataclass(frozen=True)
class BoundOutcome:
    """The analysis, Theorem 2's and Theorem 3's checks (``None`` when not asked for) and
    where the JSON and HTML went."""

    analysis: BoundAnalysis
    generator: GeneratorSummary
    theorem2: dict[str, Any] | None
    theorem3: dict[str, Any] | None
    json: Path
    html: Path


def bound(
    *,
    generator: str | Path,
    model: str | Path,
    json_path: str | Path,
    n: int = 500,
    n_samples: int = DEFAULT_SAMPLES,
    quantile: float = 0.5,
    confidence: float = 0.95,
    lipschitz: float | None = None,
    theorem2: int = 20,
    second_model: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
) -> BoundOutcome:
    """Bound the robustness any classifier can reach on ``generator``'s data and measure
    ``model``'s; write ``json_path`` and the HTML page beside it (same name, ``.html``).

    Theorem 2's check runs on ``theorem2`` generated samples (0: not run); with
    ``second_model``, Theorem 3's bound on perturbations common to both models is set beside
    the share an attack on both finds, on ``n`` samples.

    Before any work: both places are checked (:func:`~brittle.files.check_outputs`:
    writable, regular files or absent, not links, not the same file, not a checkpoint read;
    so ``json_path`` may not end in ``.html``), the checkpoints load (classifiers and
    a generator, each refused if it is the other kind), the generator's output must be the
    classifiers' input shape, and the quantile must lie in (0, 1).
    """
    check_positive_integer(n, "--n")
    check_positive_integer(n_samples, "--n-samples")
    if theorem2 != 0:
        check_positive_integer(theorem2, "--theorem2")
    if not is_real(quantile) or not 0 < quantile < 1:
        raise InputError(f"--quantile must be in (0, 1), got {quantile!r} (the median: 0.5)")
    places = check_outputs(
        {"--json": json_path, _HTML: Path(json_path).with_suffix(".html")},
        {"--generator": generator, "--model": model, "--second-model": second_model},
    )
    json_out, html_out = places["--json"], places[_HTML]
    torch_device = resolve_device(device)
    gen, gen_meta = load_generator(generator, torch_device)
    classifier = _white_box(model, gen.output_shape, torch_device)
    check_pair(classifier, gen)
    second = (
        None if second_model is None else _white_box(second_model, gen.output_shape, torch_device)
    )
    if second is not None:
        check_pair(second, gen)
    found = analyse(
        classifier,
        gen,
        n=n,
        n_samples=n_samples,
        quantile=quantile,
        confidence=confidence,
        lipschitz=lipschitz,
        seed=seed,
    )
    summary = summarise_generator(gen, classifier, found.lipschitz, seed=seed)
    checked2 = theorem2_check(classifier, gen, theorem2, seed=seed) if theorem2 else None
    checked3 = None
    if second is not None:
        checked3 = theorem3_check(
            classifier,
            second,
            gen,
            n,
            lipschitz=found.lipschitz,
            n_samples=n_samples,
            confidence=confidence,
            seed=seed,
        )
        checked3["second_model"] = str(second_model)
    data = {
        "brittle_version": __version__,
        "generator": {"path": str(generator), **_provenance(gen_meta), **summary.as_json()},
        "model": str(model),
        "seed": seed,
        **found.as_json(),
        "theorem2": checked2,
        "theorem3": checked3,
    }
    write_json(json_out, data)
    names = (str(model), str(generator), json_out.name)
    write_text_atomic(html_out, render(found, summary, names, checked2, checked3))
    return BoundOutcome(found, summary, checked2, checked3, json_out, html_out)


def _provenance(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("arch", "latent_dim", "output_shape", "dataset", "epochs", "seed")
    return {k: meta.get(k) for k in keys}


def figures(found: BoundAnalysis) -> list[tuple[str, bytes]]:
    """The page's figures: the empirical CDFs of r_Z, r_in and r_unc against the bound's
    curves, and the image-space bound as a function of the number of classes."""
    est = found.estimates
    latent = np.sort(est.latent.values.cpu().double().numpy())
    image = {
        "r_in": np.sort(est.in_distribution.values.cpu().double().numpy()),
        "r_unc": np.sort(est.unconstrained.values.cpu().double().numpy()),
    }
    probs = found.probabilities.estimate
    finite = [v for v in (*latent, *image["r_in"]) if np.isfinite(v)]
    top = max([*finite, found.bound_input.raw, found.bound_latent.raw, 1e-9])
    top = top if np.isfinite(top) else max(finite or [1.0])
    eta = np.linspace(0, 1.5 * top, 200)
    return [
        (
            "Latent space: the empirical CDF of r_Z against Theorem 1's lower bound on "
            "P(r_Z <= eta) (omega the identity).",
            bound_cdf_plot(
                {"r_Z": latent},
                eta,
                in_distribution_bound(eta, probs),
                found.bound_latent.raw,
                q=found.quantile,
                xlabel="eta (latent L2)",
                title="r_Z against the bound",
            ),
        ),
        (
            f"Image space: the empirical CDFs of r_in and r_unc against the bound with "
            f"omega(t) = L t, L = {found.lipschitz:.4g}.",
            bound_cdf_plot(
                image,
                eta,
                in_distribution_bound(eta, probs, found.lipschitz),
                found.bound_input.raw,
                q=found.quantile,
                xlabel="eta (image L2)",
                title="r_in and r_unc against the bound",
            ),
        ),
        (
            "The bound at the quantile for K balanced classes, in image space: fewer classes "
            "allow more robustness.",
            bound_vs_classes_plot(list(range(2, 21)), q=found.quantile, lipschitz=found.lipschitz),
        ),
    ]


def render(
    found: BoundAnalysis,
    summary: GeneratorSummary,
    names: tuple[str, str, str],
    theorem2: dict[str, Any] | None = None,
    theorem3: dict[str, Any] | None = None,
) -> str:
    """The HTML page of an analysis, the generator's summary and the theorems' checks
    (figures embedded; user text escaped); ``names``: the model, the generator and the JSON
    file, as the user gave them."""
    model, generator, json_name = names
    env = Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    est = found.estimates
    rows = [
        _row("r_Z (latent)", est.latent, found.bound_latent, "bound_latent_median", "median_r_z"),
        _row(
            "r_in (in-distribution)",
            est.in_distribution,
            found.bound_input,
            "bound_input_median",
            "median_r_in",
        ),
        _row(
            "r_unc (unconstrained)",
            est.unconstrained,
            found.bound_input,
            "bound_input_median",
            "median_r_unc",
        ),
    ]
    probs = found.probabilities
    classes = [
        {"name": str(k), "p": float(p), "low": float(lo), "high": float(hi)}
        for k, (p, lo, hi) in enumerate(zip(probs.estimate, probs.lower, probs.upper, strict=True))
    ]
    warnings = [
        f"not as the theory predicts: {what}" for what, ok in found.checks.items() if not ok
    ]
    warnings += [
        f"{e.quantity}: {e.failures} of {len(e.values)} searches found no change (counted as "
        "infinite)"
        for e in (est.latent, est.in_distribution, est.unconstrained)
        if e.failures
    ]
    if theorem2 is not None and theorem2["violations"]:
        warnings.append(
            f"Theorem 2: {theorem2['violations']} of {theorem2['n']} samples have a measured "
            "r_unc of the projected classifier below r_in / 2"
        )
    if theorem3 is not None and not theorem3["attack_reaches_bound"]:
        warnings.append(
            "Theorem 3: the joint attack found common perturbations on fewer samples than the "
            "bound promises (a weak attack, or an underestimated Lipschitz constant)"
        )
    methods = [e.method for e in (est.latent, est.in_distribution, est.unconstrained)]
    return env.get_template("bound.html.j2").render(
        a=found,
        rows=rows,
        classes=classes,
        warnings=warnings,
        methods=methods,
        lipschitz_text=_lipschitz_text(found.lipschitz_method),
        figures=[
            (c, base64.b64encode(png).decode("ascii"))
            for c, png in (*summary.figures, *figures(found))
        ],
        summary=summary,
        model_name=model,
        generator_name=generator,
        json_name=json_name,
        theorem2=theorem2,
        theorem3=theorem3,
        num=_num,
        version=__version__,
    )


def _row(name: str, estimate: Any, bound: Bound, bound_key: str, median_key: str) -> dict[str, Any]:
    """A line of the page's table; ``*_key``: where its numbers are in the JSON."""
    return {
        "name": name,
        "bound": bound.raw,
        "bound_normalised": bound.normalised,
        "bound_key": bound_key,
        "median_key": median_key,
        "raw": estimate.median,
        "normalised": estimate.normalised_median,
        "by": estimate.normalised_by,
    }


def _lipschitz_text(method: dict[str, Any]) -> str:
    if "given" in method:
        return "given"
    return str(method.get("method", "estimated"))


def _num(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def _white_box(model: str | Path, shape: Sequence[int], device: torch.device) -> Classifier:
    """The model at ``model`` (any format :func:`~brittle.loading.load_model` reads without
    weights), for inputs of ``shape``; refused when it gives no gradients (ONNX)."""
    loaded = load_model(model, input_shape=shape, device=device)
    if not isinstance(loaded.model, Classifier):
        raise InputError(
            f"{model} is a query-only model ({loaded.meta.get('format')}): the robustness "
            "estimators of the bounds follow the model's gradients; give a white-box model "
            "(a brittle checkpoint, TorchScript or a torch.export program)"
        )
    return loaded.model
