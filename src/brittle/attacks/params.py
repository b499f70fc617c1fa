"""One declaration per attack parameter: its type, range, default and help text.

An attack declares each parameter once, as a typed field of a :func:`declared` class
(``steps: int = param(default=40, help="Iterations.", low=1)``): the annotation gives its
type, :func:`param` the rest. From the fields come the constructor (whose signature type
checkers and IDEs see, as for a dataclass) and the :class:`Param` list, used three times, so
the three always agree: the constructor validates every value against it (a bad value is an
:class:`~brittle.errors.InputError` that names the parameter), the command line builds its
options from it, and the run key of an evaluation is made from the declared parameters'
values (never from the object's attributes).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import InitVar, dataclass
from enum import Enum
from types import UnionType
from typing import (
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypeVar,
    Union,
    dataclass_transform,
    get_args,
    get_origin,
)

from brittle.errors import InputError
from brittle.threat import Norm
from brittle.validation import is_integer, is_real


@dataclass(frozen=True)
class Param:
    """A parameter of an attack's constructor.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``. Numbers must lie in ``[low, high]``
    (``low_open``: strictly above ``low``) and be finite; strings must be one of ``choices``.
    ``optional`` allows ``None``. ``cli`` is the flag's name on the command line (``None``:
    the parameter is not offered there).
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    cli: str | None = ""

    @property
    def flag(self) -> str | None:
        """The command-line flag, e.g. ``--step-size`` (``None`` when not offered)."""
        if self.cli is None:
            return None
        return "--" + (self.cli or self.name.replace("_", "-"))

    def describe_range(self) -> str:
        """The accepted values in words, for messages and help texts."""
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        parts = []
        if self.low is not None:
            parts.append(f"> {self.low:g}" if self.low_open else f">= {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        what = {int: "an integer", float: "a number", str: "a string"}[self.kind]
        text = what + (" " + " and ".join(parts) if parts else "")
        return text + (" (or None)" if self.optional else "")

    def check(self, value: Any, owner: str) -> Any:
        """``value`` converted to the declared kind, or an :class:`InputError` naming it."""
        if value is None:
            if self.optional:
                return None
            raise InputError(f"{owner}: {self.name} must be {self.describe_range()}, got None")
        if isinstance(value, Enum):
            value = value.value
        bad = InputError(f"{owner}: {self.name} must be {self.describe_range()}, got {value!r}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value.lower() not in self.choices):
                raise bad
            return value.lower()
        if not is_real(value):
            raise bad
        if self.kind is int and not is_integer(value):
            raise bad
        number = float(value)
        if not math.isfinite(number):
            raise bad
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            raise bad
        if self.high is not None and number > self.high:
            raise bad
        return int(number) if self.kind is int else number


def check_params(declared: tuple[Param, ...], values: dict[str, Any], owner: str) -> dict[str, Any]:
    """Every declared parameter's value from ``values``, checked and converted."""
    names = {p.name for p in declared}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AssertionError(f"{owner} sets undeclared parameters {unknown}")
    return {p.name: p.check(values.get(p.name, p.default), owner) for p in declared}


# ------------------------------------------------------------------ declaring fields
_REQUIRED: Any = object()
"""The default of a field that has none: the constructor's argument is required."""


class NormArg(Protocol):
    """The type of a ``norm`` field: given as a name (``"linf"``, ``"2"``, ...) or a
    :class:`~brittle.threat.Norm`, read back as the ``Norm`` (a descriptor's types, which type
    checkers use for the constructor's argument and the attribute)."""

    def __get__(self, instance: object, owner: type | None = None) -> Norm: ...

    def __set__(self, instance: object, value: str | Norm) -> None: ...


@dataclass(frozen=True)
class Declaration:
    """What a field of a :func:`declared` attack states besides its type (the annotation):
    its default, help text, range and flag (see :class:`Param`); ``kw_only``: the argument
    is keyword-only. Made by :func:`param` and the shared declarations below."""

    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    cli: str | None = ""
    kw_only: bool = False

    def declare(self, name: str, annotation: Any) -> Param:
        """The :class:`Param` of the field ``name: annotation``.

        The kind comes from the annotation: ``int``, ``float``, ``bool``, ``str``, a
        ``Literal`` of strings (which gives the choices) or :class:`NormArg` (a string among
        ``choices``); ``| None`` makes it optional.
        """
        kind, optional, choices = _kind(name, annotation)
        if choices and self.choices:
            raise TypeError(f"{name}: give its choices once, in the Literal or in choices=")
        declared = Param(
            name,
            kind,
            None if self.default is _REQUIRED else self.default,
            self.help,
            low=self.low,
            high=self.high,
            low_open=self.low_open,
            choices=choices or self.choices,
            optional=optional,
            cli=self.cli,
        )
        if self.default is not _REQUIRED:
            try:
                declared.check(self.default, "the declaration")
            except InputError as err:
                raise TypeError(f"{name}: its default is out of its range ({err})") from None
        return declared


def param(
    *,
    default: Any = _REQUIRED,
    help: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple[str, ...] | None = None,
    cli: str | None = "",
    kw_only: bool = False,
) -> Any:
    """Declare a parameter of a :func:`declared` attack, e.g.
    ``steps: int = param(default=40, help="Iterations.", low=1)``.

    Without ``default`` the constructor's argument is required. Type checkers read the
    arguments by name (``default=``), so every argument is keyword-only.
    """
    return Declaration(default, help, low, high, low_open, choices, cli, kw_only)


def argument(*, default: Any = _REQUIRED, kw_only: bool = False) -> Any:
    """Declare a constructor argument that is no parameter of the attack (an ``InitVar``:
    not validated, not in :meth:`~brittle.attacks.base.Attack.config`), for the class's
    ``_configure`` to take: an alias, or the attack that ``Minimize`` wraps."""
    return Declaration(default, "", kw_only=kw_only)


def budget(*, default: float | None = _REQUIRED) -> Any:
    """The budget ``eps``: required by fixed-budget attacks (``eps: float = budget()``); an
    optional cap of minimal ones (``eps: float | None = budget(default=None)``)."""
    optional = default is None
    return param(
        default=default,
        help="Budget in the attack's norm"
        + (" (optional: caps the smallest perturbation found)." if optional else "."),
        low=0.0,
    )


def norm_choice(default: str, choices: tuple[str, ...]) -> Any:
    """The perturbation norm, among the attack's own (``norm: NormArg = norm_choice(...)``)."""
    return param(default=default, help="Perturbation norm.", choices=choices)


STEPS: Any = param(default=10, help="Iterations.", low=1)
STEP_SIZE: Any = param(
    default=None,
    help="Step size alpha in absolute units (default: relative to eps).",
    low=0.0,
    low_open=True,
)
TARGETED: Any = param(default=False, help="Aim at target classes.", cli=None)
SEED: Any = param(default=0, help="Seed of the per-sample random draws.", cli=None)
NORMS = ("linf", "l2", "l1", "l0")


def _kind(name: str, annotation: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    """The kind, optionality and choices a field's annotation states."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    optional = type(None) in members
    rest = [m for m in members if m is not type(None)] if members else [annotation]
    if len(rest) == 1:
        only = rest[0]
        if only in (bool, int, float, str):
            return only, optional, None
        if only is NormArg:
            return str, optional, None
        values = get_args(only) if get_origin(only) is Literal else ()
        if values and all(isinstance(v, str) for v in values):
            return str, optional, tuple(values)
    raise TypeError(
        f"{name}: a parameter is annotated int, float, bool, str, a Literal of strings or "
        f"NormArg (each may be | None), not {annotation!r}"
    )


# ------------------------------------------------------------------ the declared class
_A = TypeVar("_A", bound=type)


@dataclass_transform(eq_default=False, field_specifiers=(param, argument, budget))
def declared(cls: _A) -> _A:
    """Make an attack class from its fields: declare each parameter once, as a typed field.

    ::

        @declared
        class MyAttack(FixedBudgetAttack):
            eps: float = budget()
            steps: int = param(default=10, help="Iterations.", low=1)
            norm: NormArg = norm_choice("linf", ("linf", "l2"))

    The class gets ``params`` (one :class:`Param` per field, in order, the kind from the
    annotation) and a constructor taking the fields in order (type checkers see its
    signature, as for a dataclass), which passes every value to ``_configure``: a class with
    checks across parameters, or ``InitVar`` fields made by :func:`argument`, overrides
    ``_configure`` and calls the base's with the parameters. Fields of a declared base class
    come first. A declared class writes no ``__init__`` of its own.
    """
    if "__init__" in cls.__dict__:
        raise TypeError(
            f"{cls.__name__}: a declared attack gets its constructor from its fields; "
            "override _configure for checks across parameters"
        )
    try:
        hints = inspect.get_annotations(cls, eval_str=True)
    except NameError as err:
        raise TypeError(f"{cls.__name__}: an annotation cannot be evaluated ({err})") from None
    fields: dict[str, _Field] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update(base.__dict__.get("_declared_fields", {}))
    for name, hint in hints.items():
        if hint is ClassVar or get_origin(hint) is ClassVar:
            continue
        spec = cls.__dict__.get(name)
        if not isinstance(spec, Declaration):
            raise TypeError(
                f"{cls.__name__}.{name}: declare the parameter with param(...) (or annotate "
                "it ClassVar)"
            )
        delattr(cls, name)
        try:
            if isinstance(hint, InitVar):
                fields[name] = _Field(name, spec, hint.type, None)
            else:
                fields[name] = _Field(name, spec, hint, spec.declare(name, hint))
        except TypeError as err:
            raise TypeError(f"{cls.__name__}.{err}") from None
    cls._declared_fields = fields  # type: ignore[attr-defined]
    cls.params = tuple(f.param for f in fields.values() if f.param is not None)  # type: ignore[attr-defined]
    cls.__init__ = _constructor(cls.__name__, list(fields.values()))  # type: ignore[misc]
    return cls


@dataclass(frozen=True)
class _Field:
    """A field of a declared class: its declaration, type, and parameter (``None``: an
    ``InitVar``)."""

    name: str
    spec: Declaration
    annotation: Any
    param: Param | None


def _constructor(owner: str, fields: list[_Field]) -> Callable[..., None]:
    """``__init__(self, <fields>)``: binds the arguments as a function of that signature
    would, then passes every value, defaults included, to ``self._configure``."""
    arguments = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in fields:
        kind = (
            inspect.Parameter.KEYWORD_ONLY
            if f.spec.kw_only
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        default = inspect.Parameter.empty if f.spec.default is _REQUIRED else f.spec.default
        annotation = str | Norm if f.annotation is NormArg else f.annotation
        arguments.append(inspect.Parameter(f.name, kind, default=default, annotation=annotation))
    try:
        signature = inspect.Signature(arguments, return_annotation=None)
    except ValueError as err:  # a required argument after one with a default
        raise TypeError(f"{owner}: {err}") from None

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{owner}(): {err}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        self._configure(**values)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{owner}.__init__"
    return __init__
