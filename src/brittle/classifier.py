"""A PyTorch classifier as attacks see it: inputs in a box, logits out, preprocessing inside.

Attacks work in input (pixel) space; the mean/std normalisation runs inside
:meth:`Classifier.logits`, so ``eps`` means what the user thinks it means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from brittle.bpda import Backward, preprocessing_function
from brittle.checks.outputs import check_differentiable, check_input_gradient, check_logits
from brittle.devices import check_device
from brittle.errors import InputError
from brittle.model import BoundsSpec, Model, model_failure
from brittle.threat import Capability
from brittle.validation import as_tensor

Preprocessing = (
    tuple[Sequence[float] | float, Sequence[float] | float]
    | dict[str, Any]
    | Callable[[Tensor], Tensor]
    | None
)
Mode = Literal["eval", "train", "batchnorm_eval"]
"""The state of the module while an attack crafts examples (see :meth:`Classifier.evaluation`)."""
MODES: tuple[Mode, ...] = ("eval", "train", "batchnorm_eval")
Amp = Literal["bf16", "fp16"]
"""A reduced precision for the forward passes attacks make (see :class:`Classifier`)."""
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _floating_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point parameter or buffer, else float32."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class Classifier(Model):
    """Wraps an ``nn.Module`` that maps inputs in ``bounds`` to logits: the white box.

    Parameters
    ----------
    module:
        The network. It must return one row of logits per input (the last layer before
        softmax). A network that returns probabilities is refused unless
        ``outputs="probabilities"``, in which case their logarithm is used as logits.
    bounds:
        The valid input box, ``(low, high)``: two numbers, infinite for an unbounded space
        (a generator's latent space), or two arrays of one input's shape (per feature).
        Every attack keeps its inputs inside it.
    preprocessing:
        ``(mean, std)`` or ``{"mean": ..., "std": ...}``, per channel or scalar, applied
        inside :meth:`logits` as ``(x - mean) / std``; or a function of the input batch
        (a quantisation, a denoiser), run inside :meth:`logits` before the module.
    preprocessing_backward:
        How gradients go through a preprocessing function: ``"exact"`` (autograd through
        it, the default), ``"identity"`` (straight through: BPDA, Athalye et al. 2018, for
        a non-differentiable function close to the identity) or a differentiable function
        whose gradient stands in for it (:mod:`brittle.bpda`). The forward pass is always
        the function itself.
    num_classes:
        Number of classes; inferred from the first forward pass when not given.
    input_shape:
        Shape of one input (``(C, H, W)``); inputs of another shape are refused.
    device:
        Where inputs are moved; defaults to the device of the module's parameters. A
        device given must be the CPU or a CUDA GPU this machine has
        (:func:`~brittle.devices.check_device`).
    mode:
        The module's state while an attack crafts examples: ``"eval"`` (the default: dropout
        off, batchnorm on its running statistics), ``"train"`` (dropout on, batchnorm on batch
        statistics: crafting inside adversarial training), or ``"batchnorm_eval"`` (dropout
        on, batchnorm on its running statistics). In every mode the parameters are frozen and
        batchnorm's running statistics are never updated by an attack. The attack base's
        clean prediction and re-check of the returned inputs always run in eval mode.
    amp:
        ``"bf16"`` or ``"fp16"``: the forward passes attacks make while crafting (and their
        gradients) run under ``torch.autocast`` at that precision, their logits cast back to
        :attr:`dtype`. The attack base's clean prediction and re-check of the returned
        inputs, and :meth:`predict_logits`, always run at the module's own precision, so
        success is never judged at reduced precision. bf16 keeps float32's range; fp16 can
        underflow small gradients to zero, which the gradient check then reports.

    Inputs are cast to :attr:`dtype`, the floating type of the module's first floating
    parameter or buffer (float32 for a module without one): a float64 model is attacked in
    float64.
    """

    capability = Capability.WHITE_BOX

    def __init__(
        self,
        module: nn.Module,
        bounds: BoundsSpec = (0.0, 1.0),
        preprocessing: Preprocessing = None,
        num_classes: int | None = None,
        input_shape: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        outputs: Literal["logits", "probabilities"] = "logits",
        mode: Mode = "eval",
        amp: Amp | None = None,
        preprocessing_backward: Backward = "exact",
    ) -> None:
        if not isinstance(module, nn.Module):
            raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if outputs not in ("logits", "probabilities"):
            raise InputError(f"outputs must be 'logits' or 'probabilities', got {outputs!r}")
        if device is None:
            first = next(iter(module.parameters()), None)
            resolved = first.device if first is not None else torch.device("cpu")
        else:
            resolved = check_device(device)
        super().__init__(bounds, num_classes, input_shape, resolved, _floating_dtype(module))
        self.module = module
        self.outputs = outputs
        self.mode = mode
        self.amp = amp
        self.module.to(self.device)
        self._mean: Tensor | None
        self._std: Tensor | None
        self.transform = preprocessing_function(preprocessing, preprocessing_backward)
        """The preprocessing function run before the module (BPDA's when declared), or
        ``None`` (a mean and std, or nothing)."""
        self._mean, self._std = self._parse_preprocessing(preprocessing)
        # per-sample shapes already checked: a new shape is checked again
        self._outputs_checked: set[tuple[int, ...]] = set()
        self._gradients_checked: set[tuple[int, ...]] = set()

    @property
    def mode(self) -> Mode:
        """The module's state while attacks craft examples (see the class docstring)."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
        self._mode = value

    @property
    def amp(self) -> Amp | None:
        """The reduced precision of the crafting forward passes, or ``None`` (see the class
        docstring)."""
        return self._amp

    @amp.setter
    def amp(self, value: Amp | None) -> None:
        if value is not None and value not in AMP_DTYPES:
            raise InputError(f"amp must be one of {', '.join(AMP_DTYPES)} or None, got {value!r}")
        self._amp = value

    # ------------------------------------------------------------------ forward passes
    def _parse_preprocessing(
        self, preprocessing: Preprocessing
    ) -> tuple[Tensor, Tensor] | tuple[None, None]:
        if preprocessing is None or callable(preprocessing):  # a function: self.transform
            return None, None
        if isinstance(preprocessing, dict):
            mean, std = preprocessing.get("mean", 0.0), preprocessing.get("std", 1.0)
        else:
            mean, std = preprocessing
        mean_t = torch.as_tensor(mean, dtype=self.dtype, device=self.device)
        std_t = torch.as_tensor(std, dtype=self.dtype, device=self.device)
        if (std_t <= 0).any():
            raise InputError(f"preprocessing std must be positive, got {std}")
        # per-channel statistics broadcast over (N, C, H, W)
        if mean_t.ndim == 1:
            mean_t = mean_t.view(1, -1, 1, 1)
        if std_t.ndim == 1:
            std_t = std_t.view(1, -1, 1, 1)
        return mean_t, std_t

    @property
    def preprocessing(self) -> dict[str, list[float]] | None:
        """The ``mean``/``std`` applied inside :meth:`logits`, as plain lists (for metadata)."""
        if self._mean is None or self._std is None:
            return None
        return {"mean": self._mean.flatten().tolist(), "std": self._std.flatten().tolist()}

    def _preprocess(self, x: Tensor) -> Tensor:
        if self.transform is not None:
            return self.transform(x)
        if self._mean is None or self._std is None:
            return x
        return (x - self._mean) / self._std

    def logits(self, x: Tensor) -> Tensor:
        """Differentiable logits of inputs ``x`` given in input space (preprocessing inside),
        at the reduced precision :attr:`amp` when one is set.

        An exception the module raises is re-raised by :func:`~brittle.model.model_failure`
        as a :class:`~brittle.errors.ModelError` (or an ``InputError`` for inputs of a shape
        it cannot take) with the module's message.
        """
        return self._logits(x, self._amp)

    def _logits(self, x: Tensor, amp: Amp | None) -> Tensor:
        try:
            if amp is None:
                out: Tensor = self.module(self._preprocess(x))
            else:
                with torch.autocast(self.device.type, dtype=AMP_DTYPES[amp]):
                    out = self.module(self._preprocess(x))
                out = out.to(self.dtype)
        except Exception as err:
            raise model_failure(err, x) from err
        if self.outputs == "probabilities":
            out = torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))
        return out

    def predict_logits(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Logits without gradient tracking, in batches, with the module in eval mode."""
        x = as_tensor(x, "x").to(self.device, self.dtype)
        with self.evaluation(), torch.no_grad():
            return (
                torch.cat([self._logits(b, None) for b in x.split(batch_size)])
                if len(x)
                else x.new_zeros(0, self.num_classes or 0)
            )

    def predict(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Predicted labels (argmax of the logits)."""
        return self.predict_logits(x, batch_size).argmax(dim=1)

    # ------------------------------------------------------------------ mode handling
    def predict_scores(self, x: Tensor) -> Tensor:
        """Logits without gradient, in eval mode and at the module's own precision (the
        attack base's uncounted passes: clean prediction and re-check)."""
        with self.evaluation(), torch.no_grad():
            return self._logits(x, None)

    def current_scores(self, x: Tensor) -> Tensor:
        """Logits without gradient, in whatever mode the module is in now."""
        with torch.no_grad():
            return self.logits(x)

    @contextmanager
    def evaluation(self, mode: Mode = "eval") -> Iterator[Classifier]:
        """The module in ``mode`` with frozen parameters inside; its state is restored after.

        Parameter gradients are never accumulated by an attack: parameters stop requiring
        gradients while inside, which also spares the backward pass their gradients. Norm
        layers with running statistics (batchnorm, and instance norm with
        ``track_running_stats``) never update them inside: in ``"train"`` mode batchnorm
        normalises with batch statistics without recording them, and the running buffers of
        every norm layer are given back bit for bit on exit (instance norm records them
        whenever it uses input statistics). ``"batchnorm_eval"`` puts every norm layer on its
        running statistics. Nested calls switch the mode and give the outer one back on exit.
        """
        modules = list(self.module.modules())
        params = list(self.module.parameters())
        norms: list[nn.modules.batchnorm._NormBase] = [
            m for m in modules if isinstance(m, nn.modules.batchnorm._NormBase)
        ]
        training = [m.training for m in modules]
        tracking = [m.track_running_stats for m in norms]
        grads = [p.requires_grad for p in params]
        buffers = [(b, b.clone()) for m in norms for b in m.buffers(recurse=False)]
        self.module.train(mode != "eval")
        for m in norms:
            if mode == "batchnorm_eval":
                m.eval()
            elif mode == "train":
                m.track_running_stats = False
        for p in params:
            p.requires_grad_(False)
        try:
            yield self
        finally:
            for module, flag in zip(modules, training, strict=True):
                module.training = flag
            for norm, flag in zip(norms, tracking, strict=True):
                norm.track_running_stats = flag
            for p, flag in zip(params, grads, strict=True):
                p.requires_grad_(flag)
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)

    # ------------------------------------------------------------------ validation
    def check_outputs(self, x: Tensor) -> None:
        """Run the model once on a few inputs and refuse outputs that are not logits
        (:func:`brittle.checks.outputs.check_logits`); sets :attr:`num_classes` when it was
        not given."""
        shape = tuple(x.shape[1:])
        if shape in self._outputs_checked:
            return
        sample = x[:8]
        try:
            with self.evaluation(), torch.no_grad():
                z = self.module(self._preprocess(sample))
        except Exception as err:
            raise model_failure(err, sample) from err
        self.num_classes = check_logits(z, sample.shape[0], self.num_classes, self.outputs)
        self._outputs_checked.add(shape)

    def check_gradients(self, x: Tensor) -> None:
        """Refuse a model whose input gradient is missing or not finite, before any attack runs
        (:mod:`brittle.checks.outputs`).

        Runs one forward and backward pass on up to 8 inputs. A model that detaches its input,
        goes through numpy or argmax, or returns NaN gradients cannot be attacked with
        gradients; say so now rather than return a meaningless result.
        """
        shape = tuple(x.shape[1:])
        if shape in self._gradients_checked:
            return
        sample = x[:8].detach().clone().requires_grad_(True)
        with self.evaluation(), torch.enable_grad():
            out = self.logits(sample)
            check_differentiable(out)
            loss = torch.nn.functional.cross_entropy(out, out.argmax(1), reduction="sum")
            (grad,) = torch.autograd.grad(loss, sample, allow_unused=True)
        check_input_gradient(grad)
        self._gradients_checked.add(shape)

    def __repr__(self) -> str:
        return (
            f"Classifier({type(self.module).__name__}, bounds={self.bounds}, "
            f"num_classes={self.num_classes}, device={self.device})"
        )
