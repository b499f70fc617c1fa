"""What an evaluation is, as one frozen, JSON-ready value.

:class:`AttackSpec` is one configured attack of an evaluation: a registered attack's name and
its own parameters (or a factory, for an attack class the registry does not know), whether
it is wrapped in the minimising bisection, the targets it aims at, whether it runs only on
the samples its evaluation's earlier attacks left standing, and the seed. ``build(eps)``
makes the attack at a budget; ``key`` is what the result store files its rows under.

:class:`EvaluationSpec` is the whole evaluation: where the model and the data come from,
the attacks, the budgets, the threat stated (or the capability to state it from), the
suite, the generator of the bound, the seed and the batch size. The command line and
:func:`brittle.evaluate` build one; the store keeps it (``--resume`` reads it back); the
report states it. Each value is checked once, here, when the spec is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from brittle.attacks.base import DEFAULT_BATCH_SIZE, Attack, TargetSpec
from brittle.attacks.registry import (
    accepted_parameters,
    attack_class,
    describe_attack,
    make_attack,
    minimize_parameters,
)
from brittle.budget import Budget, parse_budget, parse_budgets
from brittle.classifier import AMP_DTYPES
from brittle.criteria import TARGET_CHOICES
from brittle.data.limits import Limits
from brittle.errors import InputError
from brittle.eval.store import attack_key
from brittle.threat import Capability, ThreatModel
from brittle.validation import check_positive_integer, check_seed

DEFAULT_N = 1000
"""How many samples an evaluation draws when not told (all when the split holds fewer)."""
DEFAULT_EPS = ("0.05", "0.1", "0.2", "0.3")
"""The budgets of an evaluation when none are given (Goodfellow 2015 used 0.1 to 0.3 on
MNIST, in Linf). Data of another kind need their own: give them."""
FREE = frozenset({"batch_size"})
"""The fields of an :class:`EvaluationSpec` that do not change its results: a resumed
evaluation may change them."""


def check_target(target: Any, targeted: bool = False) -> TargetSpec:
    """The targets to aim at: a named choice (``random``, ``least_likely``, ``next``) or
    ``None``; ``targeted`` without a choice aims at random classes."""
    if target is None:
        return "random" if targeted else None
    if target == "all":
        raise InputError(
            "--target all (each sample once per other class) is an option of `brittle "
            "attack`; an evaluation takes one target per sample: random, least_likely or next"
        )
    if not isinstance(target, str) or target not in TARGET_CHOICES:
        raise InputError(
            f"unknown target {target!r}: an evaluation aims each sample at one target, one of "
            f"{', '.join(TARGET_CHOICES)}"
        )
    return target  # type: ignore[return-value]


@dataclass(frozen=True)
class AttackSpec:
    """One configured attack of an evaluation (see the module docstring).

    ``params`` are the attack's own parameters (not its budget: the evaluation's budgets are
    given to :meth:`build`). ``factory``, when given, builds the attack instead of the
    registry (an attack class brittle does not know): such a spec is not JSON-ready, and its
    evaluation resumes only from Python.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    minimize: bool = False
    target: TargetSpec = None
    survivors_only: bool = False
    seed: int = 0
    factory: Callable[[Any], Attack] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        if not self.label:
            object.__setattr__(self, "label", _label(self.name, self.params))
        check_seed(self.seed)
        if self.factory is None:
            cls = attack_class(self.name)
            object.__setattr__(self, "name", self.name.strip().lower())
            if "eps" in self.params:
                raise InputError(
                    f"the budget of {self.label} is the evaluation's (eps), not a parameter of "
                    "the attack"
                )
            declared = list(accepted_parameters(cls))
            if self.minimize:
                declared += [p.name for p in minimize_parameters()]
            unknown = sorted(set(self.params) - set(declared))
            if unknown:
                raise InputError(
                    f"attack {self.name!r} does not take {', '.join(unknown)}; its parameters "
                    f"are {', '.join(declared) or 'none'}"
                )

    @classmethod
    def parse(cls, text: str, **fields: Any) -> AttackSpec:
        """The attack written ``NAME[:PARAM=VALUE[:PARAM=VALUE...]]`` (``pgd:steps=40``).

        Each value is read as the parameter's declared type (``true``/``false`` for a flag);
        a parameter is its name or its flag without dashes (``step_size`` or ``step-size``).
        ``fields`` set the other fields (``minimize``, ``target``, ``seed``...).
        """
        name, *assignments = [part.strip() for part in str(text).split(":")]
        owner = attack_class(name)
        declared = {p.name: p for p in (*owner.params, *minimize_parameters())}
        by_flag = {p.name.replace("_", "-"): p for p in declared.values()}
        params: dict[str, Any] = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            key = key.strip().lstrip("-")
            p = declared.get(key) or by_flag.get(key)
            if not sep or p is None or p.name == "eps":
                why = (
                    "the budget is the evaluation's eps, for every attack"
                    if key == "eps"
                    else f"its parameters are {', '.join(accepted_parameters(owner))}"
                )
                raise InputError(
                    f"cannot read {assignment!r} in the attack {text!r}: write "
                    f"NAME:PARAM=VALUE (e.g. pgd:steps=40:restarts=2); {why}"
                )
            params[p.name] = _convert(p.kind, value.strip(), f"{p.name} of {name}")
        return cls(name=name.lower(), params=params, **fields)

    @classmethod
    def of(cls, attack: str | AttackSpec | Attack | Mapping[str, Any], **fields: Any) -> AttackSpec:
        """An attack as a user names it: a text (:meth:`parse`), a spec, a JSON record
        (:meth:`as_json`), or an attack instance (registered attacks are described by their
        declared parameters; others are kept as they are, at every budget)."""
        if isinstance(attack, AttackSpec):
            return replace(attack, **fields) if fields else attack
        if isinstance(attack, str):
            return cls.parse(attack, **fields)
        if isinstance(attack, Mapping):
            return cls.from_json({**attack, **fields})
        if isinstance(attack, Attack):
            return _from_instance(attack, fields)
        raise InputError(
            f"an attack is a name such as 'pgd:steps=40', an AttackSpec or an Attack, got "
            f"{type(attack).__name__}"
        )

    def build(self, eps: float | None) -> Attack:
        """The attack at budget ``eps`` (``None``: the attack's default)."""
        if self.factory is not None:
            return self.factory(eps)
        aims = self.target is not None and "targeted" in accepted_parameters(
            attack_class(self.name)
        )
        return make_attack(
            self.name,
            minimize=self.minimize,
            seed=self.seed,
            eps=None if eps is None else float(eps),
            targeted=True if aims else None,
            **self.params,
        )

    @cached_property
    def spec(self) -> dict[str, Any]:
        """What identifies the attack's per-sample results: its name and declared
        parameters without the budget, ``minimize`` and the targets (JSON-ready)."""
        info = describe_attack(self.build(1.0))
        info["params"].pop("eps", None)
        return {**info, "minimize": self.minimize, "target": self.target}

    @property
    def key(self) -> str:
        """The attack's key in the result store."""
        return attack_key(self.spec)

    def as_json(self) -> dict[str, Any]:
        """The spec as a JSON-ready record (:meth:`from_json` reads it back)."""
        if self.factory is not None:
            raise InputError(
                f"{self.label} is built by a factory brittle does not know: it cannot be saved "
                "for --resume; evaluate it again from Python with the same arguments"
            )
        return {
            "name": self.name,
            "params": dict(self.params),
            "label": self.label,
            "minimize": self.minimize,
            "target": self.target,
            "survivors_only": self.survivors_only,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> AttackSpec:
        """The spec of a record written by :meth:`as_json`."""
        try:
            return cls(
                name=str(record["name"]),
                params=dict(record.get("params") or {}),
                label=str(record.get("label") or ""),
                minimize=bool(record.get("minimize", False)),
                target=check_target(record.get("target")),
                survivors_only=bool(record.get("survivors_only", False)),
                seed=int(record.get("seed", 0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"cannot read the attack record {dict(record)!r}: {err}") from None


@dataclass(frozen=True)
class ModelRef:
    """Where the model comes from: a file or ``file.py:factory`` (``spec``), with the
    ``weights``, the per-channel ``preprocess`` (mean, std) and the ``classes`` stated for
    it, and the reduced precision ``amp`` (``"bf16"``, ``"fp16"``) of its crafting forward
    passes (:class:`~brittle.classifier.Classifier`). A model given as a live object is named
    by its class and content hash instead."""

    spec: str
    weights: str | None = None
    preprocess: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    classes: tuple[str, ...] | None = None
    amp: str | None = None

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise InputError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {self.amp!r}")

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "weights": self.weights,
            "preprocess": None if self.preprocess is None else [list(p) for p in self.preprocess],
            "classes": None if self.classes is None else list(self.classes),
            "amp": self.amp,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ModelRef:
        pre = record.get("preprocess")
        classes = record.get("classes")
        return cls(
            spec=str(record["spec"]),
            weights=record.get("weights"),
            preprocess=None if pre is None else (tuple(pre[0]), tuple(pre[1])),
            classes=None if classes is None else tuple(classes),
            amp=record.get("amp"),
        )


@dataclass(frozen=True)
class DataRef:
    """Where the data come from: a format or data set name (``None``: the one the model
    records) with its ``data_dir``, the ``split``, how many samples to draw (``n``,
    ``None``: :data:`DEFAULT_N` or all when fewer), and the ceilings on what its files may
    claim (``limits``, ``None``: the defaults of :class:`~brittle.data.limits.Limits`)."""

    dataset: str | None = None
    data_dir: str | None = None
    split: str = "test"
    n: int | None = None
    limits: Limits | None = None

    def __post_init__(self) -> None:
        if self.n is not None:
            check_positive_integer(self.n, "--n")

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "data_dir": self.data_dir,
            "split": self.split,
            "n": self.n,
            "limits": None if self.limits is None else asdict(self.limits),
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> DataRef:
        limits = record.get("limits")
        return cls(
            dataset=record.get("dataset"),
            data_dir=record.get("data_dir"),
            split=str(record.get("split", "test")),
            n=record.get("n"),
            limits=None if limits is None else Limits(**limits),
        )


@dataclass(frozen=True)
class EvaluationSpec:
    """One evaluation (see the module docstring). ``threat``: the threat stated, or
    ``None`` to state it from the attacks, ``capability`` and the model's box."""

    model: ModelRef
    data: DataRef
    attacks: tuple[AttackSpec, ...]
    eps: tuple[Budget, ...] = ()
    capability: Capability = Capability.WHITE_BOX
    threat: ThreatModel | None = None
    suite: str | None = None
    norm: str | None = None
    generator: str | None = None
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", parse_budgets(self.eps or DEFAULT_EPS))
        object.__setattr__(self, "attacks", tuple(self.attacks))
        check_seed(self.seed)
        check_positive_integer(self.batch_size, "--batch-size")
        if self.suite is not None:
            if self.attacks:
                raise InputError(
                    "give either a suite or attacks, not both: a suite is its own attacks"
                )
            return
        if self.norm is not None:
            raise InputError("norm is a suite's; give each attack its norm (NAME:norm=l2)")
        if not self.attacks:
            raise InputError("give at least one attack to evaluate (or a suite)")
        labels = [a.label for a in self.attacks]
        if len(set(labels)) != len(labels):
            raise InputError(f"an attack is listed twice: {', '.join(labels)}")
        if self.attacks[0].survivors_only:
            raise InputError(
                f"the first attack of an evaluation ({labels[0]}) attacks every sample; only "
                "later ones can attack the samples still standing"
            )

    @property
    def largest(self) -> Budget:
        """The largest budget."""
        return self.eps[-1]

    def as_json(self) -> dict[str, Any]:
        """The spec as a JSON-ready record (:meth:`from_json` reads it back)."""
        return {
            "model": self.model.as_json(),
            "data": self.data.as_json(),
            "attacks": [a.as_json() for a in self.attacks],
            "eps": [b.text for b in self.eps],
            "capability": self.capability.name.lower(),
            "threat": None if self.threat is None else threat_json(self.threat),
            "suite": self.suite,
            "norm": self.norm,
            "generator": self.generator,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> EvaluationSpec:
        """The spec of a record written by :meth:`as_json`."""
        try:
            threat = record.get("threat")
            return cls(
                model=ModelRef.from_json(record["model"]),
                data=DataRef.from_json(record["data"]),
                attacks=tuple(AttackSpec.from_json(a) for a in record["attacks"]),
                eps=tuple(parse_budget(e) for e in record["eps"]),
                capability=Capability[str(record.get("capability", "white_box")).upper()],
                threat=None if threat is None else ThreatModel(**threat),
                suite=record.get("suite"),
                norm=record.get("norm"),
                generator=record.get("generator"),
                seed=int(record.get("seed", 0)),
                batch_size=int(record.get("batch_size", DEFAULT_BATCH_SIZE)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"cannot read the saved evaluation: {err!r}") from None

    def differences(self, other: EvaluationSpec) -> list[str]:
        """The fields (other than :data:`FREE`) in which ``other`` differs from this spec."""
        mine, theirs = self.as_json(), other.as_json()
        return [k for k in mine if k not in FREE and mine[k] != theirs[k]]


def threat_json(threat: ThreatModel) -> dict[str, Any]:
    """A threat model as a JSON-ready record (``ThreatModel(**record)`` reads it back)."""
    return {
        "goal": threat.goal.value,
        "capability": threat.capability.name,
        "norm": threat.norm.value,
        "eps": threat.eps,
        "bounds": list(threat.bounds),
        "in_distribution": threat.in_distribution,
    }


def _label(name: str, params: Mapping[str, Any]) -> str:
    return ":".join([name.strip().lower(), *(f"{k}={_show(v)}" for k, v in params.items())])


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _convert(kind: type, text: str, what: str) -> Any:
    if kind is bool:
        words = {"true": True, "on": True, "yes": True, "1": True}
        words |= {"false": False, "off": False, "no": False, "0": False}
        if text.lower() not in words:
            raise InputError(f"{what} must be true or false, got {text!r}")
        return words[text.lower()]
    try:
        return kind(text)
    except ValueError:
        word = {int: "an integer", float: "a number"}.get(kind, "text")
        raise InputError(f"{what} must be {word}, got {text!r}") from None


def _from_instance(attack: Attack, fields: Mapping[str, Any]) -> AttackSpec:
    """The spec of an attack instance: by name and declared parameters when the registry
    builds the same class, else a factory that returns the instance at every budget (the
    runner gives each call its budget)."""
    from brittle.attacks.registry import attack_names

    info = describe_attack(attack)
    params = {k: v for k, v in info["params"].items() if k != "eps"}
    name = info["name"].lower()
    if name in attack_names() and attack_class(name) is type(attack):
        return AttackSpec(name=name, params=params, **fields)
    return AttackSpec(name=attack.name, label=attack.name, factory=lambda eps: attack, **fields)


def attack_specs(
    attacks: Sequence[str | AttackSpec | Attack | Mapping[str, Any]],
    *,
    shared: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[AttackSpec, ...]:
    """The specs of ``attacks`` with ``fields`` (``minimize``, ``target``, ``seed``) and the
    ``shared`` parameters given to every attack that declares them (a parameter that none
    declares is refused; with one attack, it goes to that attack, which refuses what it does
    not take). An attack's own parameters override the shared ones."""
    specs = [AttackSpec.of(a, **fields) for a in attacks]
    stated = {k: v for k, v in (shared or {}).items() if v is not None}
    if not stated:
        return tuple(specs)
    minimize = bool(fields.get("minimize"))
    takes = [_takes(s, minimize) for s in specs]
    if len(specs) > 1:
        unused = sorted(k for k in stated if not any(k in names for names in takes))
        if unused:
            raise InputError(
                f"no attack of {', '.join(s.label for s in specs)} takes {', '.join(unused)}; "
                "drop it, or give it to one attack as NAME:PARAM=VALUE"
            )
    out = []
    for spec, names in zip(specs, takes, strict=True):
        mine = stated if len(specs) == 1 else {k: v for k, v in stated.items() if k in names}
        out.append(replace(spec, params={**mine, **spec.params}, label=spec.label))
    return tuple(out)


def _takes(spec: AttackSpec, minimize: bool) -> set[str]:
    if spec.factory is not None:
        return set()
    names = set(accepted_parameters(attack_class(spec.name)))
    return names | ({p.name for p in minimize_parameters()} if minimize else set())
