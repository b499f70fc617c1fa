"""The attack's options of ``attack`` and ``evaluate``, generated from the declarations.

Every registered attack declares its parameters (:class:`~brittle.attacks.params.Param`);
each declared flag becomes one option, with the help texts, ranges and defaults of the
attacks that declare it (``--steps N  Iterations: an integer >= 1 [bim 10, pgd 40, ...]``).
A value is parsed to the declared type here and checked against the declared range by
:func:`~brittle.attacks.registry.make_attack`. The bisection of ``--minimize`` adds the
parameters of :class:`~brittle.attacks.minimize.Minimize` the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from brittle import tasks
from brittle.attacks.params import Param
from brittle.attacks.registry import attack_class, attack_names, minimize_parameters
from brittle.threat import Capability

from .parser import CAPABILITIES, CONVERTERS, METAVARS, UsageError, capability, choice

Owners = Sequence[tuple[str, Sequence[Param]]]
"""Who declares parameters (an attack's name, or ``minimize``) and their declarations."""

_PARAM = "param."
"""Namespace prefix of an attack parameter's option (its value goes to the attack)."""
_SEARCH = "search."
"""Namespace prefix of a bisection parameter's option (it needs ``--minimize``)."""
_OWN = {"eps"}
"""Declared parameters each command defines itself: ``attack`` takes one budget,
``evaluate`` a list."""


def add_attack_options(
    parser: argparse.ArgumentParser, eps: dict[str, Any], attack: dict[str, Any] | None = None
) -> argparse._ArgumentGroup:
    """The attack, its threat model and its declared parameters (``attack``, ``evaluate``);
    the group of the attack and its threat model, for a command to add its own to.

    ``eps`` holds the keyword arguments of the command's own ``--eps``, ``attack`` those of
    ``--attack`` that differ from one attack by name (``evaluate`` takes several).
    """
    names = attack_names()
    threat = parser.add_argument_group(
        "attack and threat model",
        "The attack is checked against the threat model these options state, before any "
        "sample is attacked: an attack that needs more than --capability grants is refused.",
    )
    threat.add_argument(
        "--attack",
        **{
            "dest": "attack_name",
            "default": "fgsm",
            "metavar": "NAME",
            "help": f"One of {', '.join(names)} (default: fgsm).",
            **(attack or {}),
        },
    )
    alias = " --max-distortion is the same option (JSMA's Upsilon, a share of the features)."
    threat.add_argument("--eps", "--max-distortion", **{**eps, "help": eps["help"] + alias})
    threat.add_argument(
        "--capability",
        type=capability,
        default=None,
        metavar="NAME",
        help=f"What the adversary may use, strongest first: {', '.join(CAPABILITIES)} "
        "(default: white_box). `evaluate` given a capability and no --attack runs the "
        "strongest suite the capability allows.",
    )
    threat.add_argument(
        "--targeted", action="store_true", help="Aim at target classes (see --target)."
    )
    threat.add_argument(
        "--target",
        type=choice(tasks.TARGETS),
        metavar="|".join(tasks.TARGETS),
        help="The target classes: random, least_likely, next ((label + 1) mod K) or, with "
        "attack only, all (each sample once per other class, with source x target "
        "matrices); implies --targeted (default: random).",
    )
    declared = parser.add_argument_group(
        "attack parameters",
        "Declared by the attacks; each attack takes only its own (listed in brackets with "
        "their defaults). Not given: the attack's default.",
    )
    attacks = [(name, attack_class(name).params) for name in names]
    _add_declared(declared, attacks, _PARAM, _attack_help)
    search = parser.add_argument_group(
        "smallest budget",
        "--minimize bisects each sample's budget for the smallest successful perturbation "
        "(fixed-budget attacks).",
    )
    search.add_argument(
        "--minimize", action="store_true", help="Bisect eps per sample (result: min_eps)."
    )
    _add_declared(search, [("minimize", minimize_parameters())], _SEARCH, _search_help)
    return threat


def attack_request(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the attack that ``attack`` and ``evaluate`` pass to their task."""
    search = _collect(args, _SEARCH)
    if search and not args.minimize:
        flags = ", ".join(str(p.flag) for p in minimize_parameters() if p.name in search)
        raise UsageError(f"{flags} set the bisection of --minimize; add --minimize")
    return {
        "attack": args.attack_name,
        "params": {**_collect(args, _PARAM), **search},
        "minimize": args.minimize,
        "targeted": args.targeted,
        "target": args.target,
        "capability": args.capability or Capability.WHITE_BOX,
    }


def _declared(owners: Owners) -> dict[str, list[tuple[str, Param]]]:
    """The command-line parameters of ``owners`` by flag: ``[(owner, param), ...]``.

    One flag stands for one parameter of one type in every owner that declares it.
    """
    by_flag: dict[str, list[tuple[str, Param]]] = {}
    for owner, params in owners:
        for p in params:
            if p.flag is not None and p.name not in _OWN:
                by_flag.setdefault(p.flag, []).append((owner, p))
    for flag, decls in by_flag.items():
        if len({(p.name, p.kind) for _, p in decls}) > 1:
            raise AssertionError(f"{flag} is declared as different parameters: {decls}")
    return by_flag


def _add_declared(
    group: argparse._ArgumentGroup,
    owners: Owners,
    prefix: str,
    describe: Callable[[Sequence[tuple[str, Param]]], str],
) -> None:
    """One option per declared flag, its help by ``describe``; not given, it leaves the
    parameter's default. Values are parsed to the declared type, not range-checked."""
    for flag, decls in _declared(owners).items():
        p = decls[0][1]
        common: dict[str, Any] = {
            "dest": prefix + p.name,
            "default": argparse.SUPPRESS,
            "help": describe(decls).replace("%", "%%"),
        }
        if p.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
            continue
        choices = list(dict.fromkeys(c for _, q in decls for c in q.choices or ()))
        if choices:
            group.add_argument(flag, type=choice(choices), metavar="|".join(choices), **common)
        else:
            group.add_argument(flag, type=CONVERTERS[p.kind], metavar=METAVARS[p.kind], **common)


def _collect(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The options given under ``prefix``, by parameter name."""
    return {k.removeprefix(prefix): v for k, v in vars(args).items() if k.startswith(prefix)}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _accepted(p: Param) -> str:
    """The values ``p`` accepts, in words (a flag pair needs none; an unset option is the
    default, so "or None" is not for the command line)."""
    return "" if p.kind is bool else p.describe_range().removesuffix(" (or None)")


def _attack_help(decls: Sequence[tuple[str, Param]]) -> str:
    """One flag's help: each distinct help text and range with the attacks that declare it
    and their defaults, e.g. ``Iterations: an integer >= 1 [bim 10, pgd 40]``."""
    texts: dict[str, dict[str, list[str]]] = {}
    for attack, p in decls:
        who = attack if p.default is None else f"{attack} {_show(p.default)}"
        texts.setdefault(p.help.rstrip("."), {}).setdefault(_accepted(p), []).append(who)
    sentences = []
    for text, ranges in texts.items():
        detail = "; ".join(
            f"{accepted} [{', '.join(who)}]".strip() for accepted, who in ranges.items()
        )
        sentences.append(f"{text}{' ' if detail.startswith('[') else ': '}{detail}")
    return ". ".join(sentences) + "."


def _search_help(decls: Sequence[tuple[str, Param]]) -> str:
    """A bisection flag's help: its text, range and default."""
    p = decls[0][1]
    default = "" if p.default is None else f" (default: {_show(p.default)})"
    return f"{p.help.rstrip('.')}: {_accepted(p)}{default}."
