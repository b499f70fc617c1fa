"""The substitute-and-transfer black-box attack of Papernot et al. (ASIA CCS 2017), for an
adversary who holds some inputs of the task and, at most, the target's labels."""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import InitVar
from typing import Any, Literal

from torch import Tensor

from brittle.errors import InputError
from brittle.model import Model
from brittle.substitute import SubstituteFit, train_substitute
from brittle.substitute.training import ModuleFactory
from brittle.threat import Capability, Goal, Norm

from .base import Attack, AttackRun, FixedBudgetAttack
from .params import SEED, TARGETED, NormArg, argument, budget, declared, norm_choice, param
from .registry import attack_class, make_attack

ARCHITECTURES = ("mlp", "lenet", "softmax", "maxout")
"""The zoo networks a substitute may be (:data:`brittle.zoo.ARCHITECTURES` that take any
number of classes and need no data to initialise)."""

PAPER_SEED_SIZE = 150
"""The paper's seed set: 150 inputs labelled by the oracle."""
_FITS: weakref.WeakKeyDictionary[Model, dict[str, SubstituteFit]] = weakref.WeakKeyDictionary()
"""Trained substitutes by target and recipe: an evaluation builds the attack again for every
chunk and budget, and must not train (nor query) again."""


@declared
class Substitute(FixedBudgetAttack):
    """Papernot, McDaniel, Goodfellow, Jha, Celik & Swami 2017, "Practical Black-Box Attacks
    against Machine Learning": train a substitute F on the target's labels, craft on F with a
    white-box attack, transfer to the target.

    The substitute starts from a seed set S_0 (``seed_size`` inputs of the data set ``data``:
    150 by default when the target labels them, all of the split with ``labels="given"``;
    or the ``seed_set`` given) labelled by the target O (``labels="oracle"``) or by the labels
    the adversary holds (``labels="given"``: training data, or input/label samples). Each of
    ``rounds`` rounds of Jacobian-based dataset augmentation then adds

        S_{rho+1} = {x + lambda_rho * sgn(J_F(x)[O(x)]) : x in S_rho} U S_rho,
        lambda_rho = lambda * (-1)^floor(rho / tau),

    (after ``sigma`` rounds, from ``kappa`` points of S_rho drawn by reservoir sampling),
    labels the new points with O and trains F again (``brittle.substitute``). The
    ``crafter`` (any registered attack; FGSM, the paper's, by default) crafts on F within the
    budget, and the base re-checks every returned input on the target: ``success`` is the
    transfer success.

    Capability: with ``labels="given"`` and ``rounds=0`` nothing is asked of the target
    (``SAMPLES``); otherwise its labels are (``ORACLE_LABELS``, which threats of
    ``TRAINING_DATA`` and above permit). The substitute is trained once per target and
    recipe, at the first call, and kept: its labels are a one-off cost, counted in
    ``attack.fit.queries`` (and per round in ``attack.fit.rounds``), not per sample. Per
    sample the transfer spends no query: ``result.queries`` is 0 and only the base's re-check
    (``verification_queries``) reaches the target. A ``trained`` substitute
    (:func:`brittle.substitute.train_substitute`) may be given instead. ``module`` builds the
    substitute network instead of the zoo's ``architecture``. ``attack.fit.agreement(x,
    result.pred_clean)`` is the share of inputs on which the substitute agrees with the target.
    """

    capability = Capability.ORACLE_LABELS
    goals = frozenset({Goal.UNTARGETED, Goal.TARGETED})
    norms = frozenset({Norm.LINF, Norm.L2})
    eps: float = budget()
    norm: NormArg = norm_choice("linf", ("linf", "l2"))
    data: str | None = param(
        default=None,
        help="Data set the adversary draws its seed inputs from (a name brittle.data "
        "loads: digits, mnist5k, mnist, ...).",
        cli="sub-data",
    )
    split: Literal["train", "test"] = param(
        default="train", help="Split of the substitute's data set.", cli="sub-split"
    )
    seed_size: int | None = param(
        default=None,
        help="Seed inputs drawn from the data set (default: 150, the paper's, when the "
        "target labels them; all of the split with labels=given).",
        low=1,
        cli="sub-seed-size",
    )
    labels: Literal["oracle", "given"] = param(
        default="oracle",
        help="Who labels the seed set: the target's labels (queries) or the data's own.",
        cli="sub-labels",
    )
    architecture: str = param(
        default="mlp", help="The substitute's zoo network.", choices=ARCHITECTURES, cli="sub-arch"
    )
    rounds: int = param(
        default=6,
        help="Rounds of Jacobian-based augmentation (the paper: 6).",
        low=0,
        cli="sub-rounds",
    )
    lam: float = param(
        default=0.1,
        help="Augmentation step lambda (the paper: 0.1).",
        low=0.0,
        low_open=True,
        cli="sub-lambda",
    )
    tau: int | None = param(
        default=3,
        help="Rounds between flips of lambda's sign (None: never).",
        low=1,
        cli="sub-tau",
    )
    kappa: int | None = param(
        default=None,
        help="Reservoir sampling: new points per round after sigma rounds (None: all).",
        low=1,
        cli="sub-kappa",
    )
    sigma: int = param(
        default=3,
        help="Rounds of full augmentation before reservoir sampling.",
        low=0,
        cli="sub-sigma",
    )
    epochs: int = param(
        default=10,
        help="Training epochs of the substitute per round.",
        low=1,
        cli="sub-epochs",
    )
    lr: float = param(
        default=1e-3,
        help="Adam's learning rate for the substitute.",
        low=0.0,
        low_open=True,
        cli="sub-lr",
    )
    crafter: str = param(
        default="fgsm", help="The white-box attack run on the substitute.", cli="sub-crafter"
    )
    targeted: bool = TARGETED
    seed: int = SEED
    seed_set: InitVar[Tensor | tuple[Tensor, Tensor] | None] = argument(default=None, kw_only=True)
    module: InitVar[ModuleFactory | None] = argument(default=None, kw_only=True)
    trained: InitVar[SubstituteFit | None] = argument(default=None, kw_only=True)

    def _configure(
        self,
        *,
        seed_set: Tensor | tuple[Tensor, Tensor] | None = None,
        module: ModuleFactory | None = None,
        trained: SubstituteFit | None = None,
        **values: Any,
    ) -> None:
        """Check the parameters, where the seed set comes from, and the crafter."""
        super()._configure(**values)
        self._samples = _check_samples(seed_set, self.labels)
        self._module = module
        self.fit = trained  # the substitute of the last call: rounds, queries, agreement
        if trained is not None:
            if not isinstance(trained, SubstituteFit):
                raise InputError(
                    f"trained must be a brittle.substitute.SubstituteFit, got "
                    f"{type(trained).__name__}"
                )
            self.capability = trained.capability
        else:
            if (self.data is None) == (self._samples is None):
                raise InputError(
                    "the substitute needs the adversary's inputs: give data=<data set name> "
                    "(e.g. 'digits', 'mnist') or seed_set=(x, y), not both"
                )
            if self.data is not None:
                from brittle.data import resolve_dataset_name
                from brittle.errors import BrittleError

                try:
                    resolve_dataset_name(self.data)
                except BrittleError as err:
                    raise InputError(f"Substitute: data {self.data!r}: {err}") from None
            offline = self.labels == "given" and self.rounds == 0
            self.capability = Capability.SAMPLES if offline else Capability.ORACLE_LABELS
        if module is not None and not callable(module):
            raise InputError(f"module must build an nn.Module, got {type(module).__name__}")
        self._crafting()  # a crafter that does not exist, or lacks the norm or goal, fails now

    # ------------------------------------------------------------------ the pieces
    def _crafting(self) -> Attack:
        """The crafter at this attack's budget, norm and seed."""
        if self.crafter.strip().lower() == "substitute":
            raise InputError("Substitute: crafter must be a white-box attack, not itself")
        try:
            cls = attack_class(self.crafter)
        except InputError as err:
            raise InputError(f"Substitute: crafter {self.crafter!r}: {err}") from None
        accepted = {p.name for p in cls.params}
        options: dict[str, Any] = {"eps": self.eps}
        if "norm" in accepted:
            options["norm"] = self.norm.value
        elif self.norm not in cls.norms:
            raise InputError(f"the crafter {self.crafter!r} does not work in {self.norm.value}")
        if self.targeted:
            options["targeted"] = True
        if "eps" not in accepted:
            raise InputError(
                f"the crafter {self.crafter!r} takes no budget; use a fixed-budget attack "
                "(fgsm, bim, pgd, mifgsm, apgd, ...)"
            )
        return make_attack(self.crafter, seed=self.seed, **options)

    def _recipe(self) -> str:
        """What decides the substitute (besides the target, which keeps its own)."""
        recipe = {
            k: v
            for k, v in self.config().items()
            if k not in ("eps", "norm", "targeted", "crafter")
        }
        recipe["module"] = None if self._module is None else id(self._module)
        if self._samples is not None:
            digest = hashlib.sha256()
            for part in self._samples:
                if part is not None:
                    digest.update(part.detach().cpu().contiguous().numpy().tobytes())
            recipe["samples"] = digest.hexdigest()
        return json.dumps(recipe, sort_keys=True)

    def _seed_set(self) -> tuple[Tensor, Tensor | None]:
        """The seed inputs and, with ``labels="given"``, their labels."""
        if self._samples is not None:
            x, y = self._samples
        else:
            from brittle.data import load_dataset

            assert self.data is not None
            size = self.seed_size
            if size is None and self.labels == "oracle":
                size = PAPER_SEED_SIZE
            chosen = load_dataset(self.data, self.split).subset(size, self.seed)
            x, y = chosen.x, chosen.y
        return x, (y if self.labels == "given" else None)

    def _fit_for(self, model: Model, run: AttackRun) -> SubstituteFit:
        """The substitute of ``model``: given, kept from an earlier call, or trained now."""
        if self.fit is not None and self._fit_is_given:
            return self.fit
        key = self._recipe()
        kept = _FITS.setdefault(model, {})
        if key not in kept:
            x, y = self._seed_set()
            if tuple(x.shape[1:]) != tuple(run.x.shape[1:]):
                raise InputError(
                    f"the substitute's inputs have shape {tuple(x.shape[1:])} but the attacked "
                    f"inputs {tuple(run.x.shape[1:])}: give data of the target's task"
                )
            kept[key] = train_substitute(
                x,
                y,
                target=model if self.capability > Capability.SAMPLES else None,
                module=self._module or self.architecture,
                num_classes=model.num_classes,
                bounds=model.bounds,
                rounds=self.rounds,
                lam=self.lam,
                tau=self.tau,
                kappa=self.kappa,
                sigma=self.sigma,
                epochs=self.epochs,
                lr=self.lr,
                seed=self.seed,
                device=run.x.device,
            )
        return kept[key]

    def fitted(self, model: Model) -> SubstituteFit | None:
        """The substitute this attack crafts on for ``model``, when one is given or was
        trained by an earlier call (never trained here)."""
        if self.fit is not None and self._fit_is_given:
            return self.fit
        return _FITS.get(model, {}).get(self._recipe())

    @property
    def _fit_is_given(self) -> bool:
        return self._samples is None and self.data is None

    # ------------------------------------------------------------------ the attack
    def _run(self, run: AttackRun) -> Tensor:
        assert run._model is not None
        self.fit = self._fit_for(run._model, run)
        surrogate = self.fit.classifier(run.access.bounds, run.x.dtype, run.x.device)
        crafted = self._crafting().attack(
            surrogate,
            run.x,
            run.y,
            ids=run.ids,
            eps=run.eps,
            criterion=run.criterion.restricted(run.target),
        )
        return crafted.x_adv.to(run.x.dtype)


def _check_samples(
    samples: Tensor | tuple[Tensor, Tensor] | None, labels: str
) -> tuple[Tensor, Tensor | None] | None:
    """The adversary's own inputs (and labels) as a pair, checked."""
    if samples is None:
        return None
    if isinstance(samples, Tensor):
        x, y = samples, None
    else:
        try:
            x, y = samples
        except (TypeError, ValueError):
            raise InputError("seed_set must be inputs x or a pair (x, y) of tensors") from None
    if not isinstance(x, Tensor) or (y is not None and not isinstance(y, Tensor)):
        raise InputError("seed_set must be inputs x or a pair (x, y) of tensors")
    if labels == "given" and y is None:
        raise InputError("labels='given' needs the seed set's labels: seed_set=(x, y)")
    if y is not None and len(y) != len(x):
        raise InputError(f"seed_set holds {len(x)} inputs but {len(y)} labels")
    return x, y
