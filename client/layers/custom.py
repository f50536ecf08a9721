"""Custom layers: a ``layerserve.layers.Layer`` subclass's ``build`` and ``call``, recorded as ONNX.

When such a layer is constructed, its ``build`` runs once with a symbolic input shape (entries
are resolved by the server from the real input at the first apply) and its ``call`` once on
symbolic inputs; what they record (weights, ops, losses, updates) becomes the create body
of a ``class: "Layer"`` layer. Recording needs ``onnx`` only to serialize: ``pip install
'layerserve[custom]'``.
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from layerserve._foreign import is_config_object
from layerserve._serialize import to_wire
from layerserve._tracing import Tensor, Trace
from layerserve.layers.input_spec import InputSpec
from layerserve.protocol import tensor_to_json

if TYPE_CHECKING:
    from layerserve.layers.variables import RemoteVariable
    from layerserve.ops import UpdateOp

# A ``layerserve.layers.Layer`` being defined: not imported, since the Layer builds on this module.
Layer = Any

__all__ = ["Definition", "InputDim", "SymbolicShape", "Variable", "define_layer", "onnx_layer_config"]

TRAINING = "call/training"


class InputDim:
    """One dimension of a layer input, known only when the server builds the layer."""

    def __init__(self, index: int, axis: int) -> None:
        self.index, self.axis = index, axis

    @property
    def token(self) -> str:
        return f"input{self.index or ''}:{self.axis}"

    @property
    def value(self) -> InputDim:  # TF1's Dimension.value
        return self

    def __int__(self) -> int:
        raise TypeError(f"{self!r} is only known when the layer is built on the server: pass it to add_weight's "
                        "shape as it is (arithmetic on it is not supported)")

    __index__ = __int__

    def __repr__(self) -> str:
        return f"InputDim({self.token!r})"


class SymbolicShape:
    """``input_shape`` as ``build`` sees it: ``input_shape[-1]`` is an ``InputDim``."""

    def __init__(self, index: int, rank: int) -> None:
        self.index, self.rank = index, rank

    def __getitem__(self, axis: int) -> InputDim:
        if not isinstance(axis, int):
            raise TypeError("index a symbolic input shape with an int, e.g. input_shape[-1]")
        return InputDim(self.index, axis)

    def __len__(self) -> int:
        return self.rank

    @property
    def ndims(self) -> int:
        return self.rank

    def as_list(self) -> list[InputDim]:
        return [InputDim(self.index, axis) for axis in range(self.rank)]


class Variable(Tensor):
    """A weight made by ``add_weight``: symbolic in ``call``, a server variable afterwards."""

    def __init__(self, trace: Trace, layer: Layer, name: str, dtype: str, *, trainable: bool) -> None:
        super().__init__(trace, name, dtype, per_apply=False)
        self._layer, self.trainable = layer, trainable

    def remote(self) -> RemoteVariable:
        """The server's variable (once the layer is built at its first apply)."""
        for var in self._layer.variables:
            if var.name.rsplit("/", 1)[-1] == f"{self.name}:0":
                found: RemoteVariable = var
                return found
        raise ValueError(f"variable {self.name!r} does not exist yet: the layer is built at its first apply")

    def numpy(self) -> np.ndarray:
        """The variable's current value on the server (once the layer is built)."""
        return self.remote().numpy()

    def value(self) -> np.ndarray:
        return self.numpy()

    def read_value(self) -> np.ndarray:
        return self.numpy()

    def assign(self, value: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:  # noqa: FBT001, FBT002 - TF's signature
        return self.remote().assign(value, read_value=read_value)


@dataclass
class Definition:
    """What ``build`` and ``call`` declared, in order."""

    trace: Trace
    dtype: str
    variables: list[dict[str, Any]] = field(default_factory=list)
    weights: list[Variable] = field(default_factory=list)
    losses: list[tuple[Tensor, bool]] = field(default_factory=list)  # (value, conditional)
    lazy_losses: list[Callable[[], Any]] = field(default_factory=list)
    updates: list[UpdateOp] = field(default_factory=list)


def _shape_entry(entry: Any) -> int | str:
    if isinstance(entry, InputDim):
        return entry.token
    if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
        return int(entry)
    raise TypeError(f"add_weight: shape entries are ints or input dims (input_shape[-1]), got {entry!r}")


def _initial(initializer: Any, shape: list[int | str], dtype: str) -> dict[str, Any]:
    """``{"initializer": ...}`` or ``{"value": tensor}`` for the variable spec."""
    if initializer is None:
        return {"initializer": "glorot_uniform"}  # TF's add_weight default for float weights
    if isinstance(initializer, (np.ndarray, list)):
        return {"value": tensor_to_json(np.asarray(initializer, dtype=dtype))}
    if isinstance(initializer, str) or hasattr(initializer, "to_wire") or is_config_object(initializer):
        return {"initializer": to_wire(initializer, "initializer")}
    if callable(initializer) and all(isinstance(d, int) for d in shape):
        return {"value": tensor_to_json(np.asarray(initializer(tuple(shape), dtype), dtype=dtype))}
    raise TypeError(f"add_weight: initializer {initializer!r} is neither a name, a layerserve.initializers object, "
                    "an array, nor a callable on a fully known shape")


def add_weight(layer: Layer, d: Definition, name: str, shape: Any, dtype: Any, initializer: Any,
               regularizer: Any, *, trainable: bool | None) -> Variable:
    dims = [_shape_entry(e) for e in (shape or [])]
    dtype_name = str(np.dtype(dtype).name) if dtype is not None else d.dtype
    trainable = True if trainable is None else bool(trainable)
    spec: dict[str, Any] = {"name": name, "shape": dims, "dtype": dtype_name, "trainable": trainable,
                            **_initial(initializer, dims, dtype_name)}
    symbolic = [e if isinstance(e, int) else f"{name}_d{k}" for k, e in enumerate(dims)]
    var = Variable(d.trace, layer, name, dtype_name, trainable=trainable)
    d.trace.inputs.append((name, dtype_name, symbolic))
    if regularizer is not None and (isinstance(regularizer, (str, dict)) or hasattr(regularizer, "to_wire")
                                    or is_config_object(regularizer)):
        spec["regularizer"] = to_wire(regularizer, "regularizer")
    elif regularizer is not None:  # a callable such as lambda w: 0.01 * ops.l2_loss(w)
        d.lazy_losses.append(lambda: regularizer(var))
    d.variables.append(spec)
    d.weights.append(var)
    return var


def add_loss(d: Definition, losses: Any, inputs: Any) -> None:
    for loss in losses if isinstance(losses, (list, tuple)) else [losses]:
        if callable(loss) and not isinstance(loss, Tensor):
            d.lazy_losses.append(loss)
        elif isinstance(loss, Tensor):
            d.losses.append((loss, loss.per_apply or inputs is not None))
        else:
            d.losses.append((d.trace.const(loss, d.dtype), False))


def add_update(d: Definition, updates: Any) -> None:
    from layerserve.ops import UpdateOp

    for update in updates if isinstance(updates, (list, tuple)) else [updates]:
        if not isinstance(update, UpdateOp) or not isinstance(update.variable, Variable):
            raise TypeError(f"add_update takes layerserve.ops.assign(...) or moving_average_update(...) of one of "
                            f"the layer's weights, got {update!r}")
        if update.variable.trainable:
            raise ValueError(f"add_update: {update.variable.name!r} is trainable; updates assign non-trainable "
                             "weights (add_weight(..., trainable=False))")
        d.updates.append(update)


def _rank(spec: InputSpec | None) -> int:
    """The rank the graph is recorded for; the server recompiles for the rank of each input."""
    if spec is None:
        return 2
    return spec.ndim or spec.min_ndim or 2


def _lazy_losses(d: Definition) -> None:
    for fn in d.lazy_losses:
        value = fn()
        tensor = value if isinstance(value, Tensor) else d.trace.const(value, d.dtype)
        if tensor.per_apply:
            raise ValueError("a loss given as a callable (or a regularizer) must depend on weights only")
        d.losses.append((tensor, False))


def _outputs(result: Any) -> list[Tensor]:
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise TypeError(f"call must return a symbolic tensor or a list of them, got {result!r}")
    return items


def define_layer(layer: Layer, dtype: str, specs: list[InputSpec | None]) -> tuple[dict[str, Any], Definition]:
    """Run ``build`` and ``call`` symbolically; the create body's config and what was declared."""
    d = Definition(Trace(), dtype)
    layer._definition = d
    try:
        inputs = [d.trace.add_input(f"input/{k}", dtype, [f"input{k}_d{j}" for j in range(_rank(spec))],
                                    per_apply=True)
                  for k, spec in enumerate(specs)]
        shapes = [SymbolicShape(k, _rank(spec)) for k, spec in enumerate(specs)]
        layer.build(shapes[0] if len(shapes) == 1 else shapes)  # the subclass's build, while defining
        params = inspect.signature(layer.call).parameters
        takes_training = "training" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        kwargs: dict[str, Any] = {}
        if takes_training:
            kwargs["training"] = d.trace.add_input(TRAINING, "bool", [], per_apply=True)
        outputs = _outputs(layer.call(inputs[0] if len(inputs) == 1 else inputs, **kwargs))
        _lazy_losses(d)
    finally:
        layer._definition = None
    config = _config(d, outputs, takes_training=takes_training)
    return config, d


def _config(d: Definition, outputs: list[Tensor], *, takes_training: bool) -> dict[str, Any]:
    named = [(f"output/{k}", t) for k, t in enumerate(outputs)]
    named += [(f"loss/{k}", t) for k, (t, _) in enumerate(d.losses)]
    named += [(f"update/{k}", u.value) for k, u in enumerate(d.updates)]
    # Graph inputs: the layer's inputs, then its variables, then the training flag.
    d.trace.inputs.sort(key=lambda item: (item[0] == TRAINING, not item[0].startswith("input/")))
    return {
        "model": base64.b64encode(d.trace.to_model(named)).decode(),
        "variables": d.variables,
        "losses": [{"output": f"loss/{k}", "conditional": cond} for k, (_, cond) in enumerate(d.losses)],
        "updates": [{"output": f"update/{k}", "variable": u.variable.name, "momentum": u.momentum}
                    for k, u in enumerate(d.updates)],
        "training_input": TRAINING if takes_training else None,
    }


def onnx_layer_config(model: Any, variables: list[dict[str, Any]], losses: list[dict[str, Any]] | None = None,
                      updates: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A ``class: "Layer"`` config from an ``onnx.ModelProto`` (or its bytes) and the specs."""
    raw = model if isinstance(model, bytes) else model.SerializeToString()
    return {"model": base64.b64encode(raw).decode(), "variables": variables, "losses": losses or [],
            "updates": updates or [], **extra}
