"""Every option of every ``brittle`` command reaches brittle intact under ``torchrun``.

torchrun's own parser classifies every word of its command line, those after ``-m brittle``
included, and takes a word that abbreviates one of its options (``--n`` of ``--nnodes``,
``--nproc-per-node``...) as its own or refuses it as ambiguous, before brittle starts.
"""

from __future__ import annotations

import argparse

import pytest
from torch.distributed.run import get_args_parser

from brittle.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, nested commands (``generator train``) by their full words."""
    found: dict[str, argparse.ArgumentParser] = {}

    def visit(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    words = f"{prefix} {name}".strip()
                    found[words] = sub
                    visit(words, sub)

    visit("", build_parser())
    return found


SHORT = "--n"
"""The one option kept although torchrun takes it: the short form of ``--num-samples``."""
COMMANDS = _commands()
OPTIONS = sorted(
    {
        (words, option)
        for words, parser in COMMANDS.items()
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != SHORT
    }
)


@pytest.mark.parametrize(("command", "option"), OPTIONS)
def test_torchrun_leaves_every_option_to_brittle(command: str, option: str) -> None:
    line = [*command.split(), option, "1"]
    args = get_args_parser().parse_args(["--nproc-per-node", "2", "-m", "brittle", *line])
    assert args.training_script == "brittle" and args.module
    assert args.training_script_args == line


def test_the_readme_torchrun_line_parses() -> None:
    line = ["evaluate", "--model", "m.pt", "--num-samples", "300", "--eps", "8/255", "--out", "r"]
    args = get_args_parser().parse_args(["--nproc-per-node", "2", "-m", "brittle", *line])
    assert args.training_script_args == line
    assert build_parser().parse_args(line).n == 300


def test_the_short_sample_count_has_a_long_form_torchrun_leaves_alone() -> None:
    shortened = [
        (words, action.option_strings)
        for words, parser in COMMANDS.items()
        for action in parser._actions
        if SHORT in action.option_strings
    ]
    assert shortened and all("--num-samples" in options for _, options in shortened)
