"""What a layer class is: its arguments, variables, shapes, config and ONNX graph.

A ``LayerKind`` subclass per TensorFlow class; one module per family under ``layerserve.server.layers``.
Kinds are pure: they never touch variable values, the store or ONNX Runtime. The generic
Layer semantics (naming, build, losses, updates, trainable) live in ``layerserve.server.core``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import onnx

from layerserve.server.errors import InvalidArgument, LayerServeError
from layerserve.server.layers.kit.initializers import Initializer, parse_initializer
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.names import to_snake_case
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.kit.regularizers import Regularizer, parse_regularizer
from layerserve.server.layers.params import REQUIRED, Param, regularizer

__all__ = ["DtypePolicy", "GraphOutputs", "LayerKind", "Shape", "Signature", "VariableSpec"]

Shape = tuple[int | None, ...]

# How a later input of another float dtype is handled (layer-api.md §4):
# "cast" (Dense, BN: cast to the layer dtype), "strict" (conv family: TypeError),
# "follow" (no variables: compute in the input's dtype).
DtypePolicy = Literal["cast", "strict", "follow"]

# kwargs every TF layer accepts through **kwargs but layerserve does not implement.
_RARE_BASE_KWARGS = ("input_shape", "batch_input_shape", "batch_size", "weights", "autocast", "dynamic")


@dataclass(frozen=True)
class VariableSpec:
    name: str  # short name, e.g. "kernel"
    shape: tuple[int, ...]
    dtype: str
    _: KW_ONLY
    trainable: bool = True
    initializer: Initializer | None = None
    regularizer: Regularizer | None = None

    def initial_value(self) -> np.ndarray:
        init = self.initializer or Initializer("Zeros")
        return init(self.shape, self.dtype)


@dataclass(frozen=True)
class Signature:
    """What a compiled graph is specialised on; the batch dimension stays dynamic."""

    dtype: str  # compute dtype of the input as fed to the graph
    shape: tuple[int, ...]  # a concrete input shape (shape[0] is treated as dynamic)
    training: bool
    variables: tuple[VariableSpec, ...] = ()
    more_shapes: tuple[tuple[int, ...], ...] = ()  # the other inputs of a layer of several inputs

    @property
    def graph_input_shape(self) -> list[Any]:
        return ["batch", *self.shape[1:]] if self.shape else []


@dataclass
class GraphOutputs:
    """The graph values a layer produces: ``y`` (in ``y_dtype``, default the signature's
    dtype) plus named extras, each ``(value, dtype)`` (e.g. BatchNormalization's statistics)."""

    y: str
    y_dtype: str | None = None
    extras: dict[str, tuple[str, str]] = field(default_factory=dict)


class LayerKind:
    class_name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    dtype_policy: ClassVar[DtypePolicy] = "cast"
    takes_training: ClassVar[bool] = False
    accepts_activity_regularizer: ClassVar[bool] = True
    # Names of extra graph inputs the runtime feeds (e.g. Dropout's noise).
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    # In inference mode, row i of the output depends on row i of the input only, so
    # concurrent applies may be batched along axis 0 (False for graphs that mix rows).
    batch_separable: ClassVar[bool] = True
    # A graph a user wrote (custom layers): its failures at run time are the input's fault, not ours.
    user_defined: ClassVar[bool] = False
    # Config fields holding large data that never changes (base64 text): stored once, by content.
    blob_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        # ``layer.name``, which some of TF's messages quote (set by the owning Layer).
        self.layer_name = ""

    @functools.cached_property
    def fingerprint(self) -> str:
        """Class and config: what a compiled graph depends on besides the input signature."""
        return f"{self.class_name}:{json.dumps(self.config, sort_keys=True, default=repr)}"

    # ---- arguments -------------------------------------------------------------------
    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        extra = (Param("activity_regularizer", None, regularizer),) if cls.accepts_activity_regularizer else ()
        names = {p.name for p in cls.params}
        return cls.params + tuple(p for p in extra if p.name not in names)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> LayerKind:
        """Validate constructor kwargs as TF does; unknown ones raise TF's TypeError."""
        params = {p.name: p for p in cls.all_params()}
        for key in kwargs:
            if key in _RARE_BASE_KWARGS:
                raise InvalidArgument(f"Argument `{key}` is not supported by layerserve", code="unsupported_argument")
            if key not in params:
                raise InvalidArgument(f"('Keyword argument not understood:', '{key}')",
                                      code="unknown_argument", exception="TypeError")
        config = {}
        for name, param in params.items():
            if name in kwargs:
                config[name] = param.parse(kwargs[name], name)
            elif param.default is REQUIRED:
                raise InvalidArgument(f"{cls.__name__}.__init__() missing 1 required positional argument: '{name}'",
                                      code="missing_argument", exception="TypeError")
            else:
                config[name] = param.default
        kind = cls(config)
        kind.validate()
        return kind

    def validate(self) -> None:
        """Cross-argument checks made at construction (override where TF has them)."""

    def regularizer(self, key: str) -> Regularizer | None:
        return parse_regularizer(self.config.get(key), key)

    def initializer(self, key: str, default: str | None = None) -> Initializer | None:
        return parse_initializer(self.config.get(key) or default, key)

    # ---- identity, inputs and outputs (custom layers override these) -----------------
    @property
    def num_inputs(self) -> int:
        return 1

    @property
    def num_outputs(self) -> int:
        return 1

    def base_name(self) -> str:
        """What ``name`` and ``scope_name`` are made from: the snake_case class name."""
        return to_snake_case(self.class_name)

    def check_layer_dtype(self, dtype: str | None) -> None:
        """Reject a ``dtype`` argument the kind cannot compute in (at creation)."""

    def build_dtype(self, dtype: str) -> str:
        """The layer's dtype at build, given the requested one (layer dtype or first input's)."""
        return dtype

    # ---- shapes and variables --------------------------------------------------------
    def input_spec(self, build_shape: tuple[int | None, ...] | None) -> InputSpec | list[InputSpec] | None:
        return None

    def check_build_shape(self, shape: tuple[int | None, ...]) -> None:
        """Errors TF raises at build beyond the input spec (e.g. an undefined channel)."""

    def check_call(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """Errors TF raises when applying to this input before the layer builds (e.g. Dropout's
        rate); checked before the apply builds or changes anything."""

    def check_op(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """Errors TF's ops raise for this input once the layer is built and the input spec holds
        (e.g. a 'valid' window larger than the input): TF has built the layer by then."""

    def dtype_error(self, layer_dtype: str, input_dtype: str) -> str:
        """TF's TypeError when a later input's float dtype differs (``dtype_policy`` "strict")."""
        return (f"Input 'filter' of '{self.class_name}' Op has type {layer_dtype} that does not match type "
                f"{input_dtype} of argument 'input'.")

    def recorded_build_shape(self, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """The build shape the layer keeps (for its input spec and config): batch dim unknown,
        unless the layer's variables depend on it (BatchNormalization over axis 0)."""
        return (None, *shape[1:])

    def variable_dtype(self, dtype: str) -> str:
        return dtype

    def variable_specs(self, input_shape: tuple[int | None, ...], dtype: str) -> list[VariableSpec]:
        return []

    def build_variables(self, shapes: list[Shape], dtype: str) -> list[VariableSpec]:
        """The variables for inputs of ``shapes`` (one per input)."""
        return self.variable_specs(shapes[0], self.variable_dtype(dtype))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        raise NotImplementedError

    def apply_cost(self, input_shape: tuple[int, ...]) -> int:
        """The work of one apply on an input of ``input_shape``, in multiply-accumulates or
        element reads: every input and output element, plus ``work_per_output`` per output."""
        inputs = math.prod(input_shape)
        try:
            outputs = math.prod(d or 0 for d in self.compute_output_shape(input_shape))
        except (LayerServeError, NotImplementedError):
            return inputs
        return inputs + outputs * max(1, self.work_per_output(input_shape))

    def work_per_output(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates (or input reads) behind one output element."""
        return 1

    # ---- execution -------------------------------------------------------------------
    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        raise NotImplementedError

    def compile_model(self, sig: Signature) -> tuple[onnx.ModelProto, list[str]] | None:
        """A whole model with its output names, for kinds not built with ``graph`` (custom layers)."""
        return None

    def weight_loss_outputs(self) -> list[str]:
        """Names of the unconditional losses ``weight_loss_model`` computes."""
        return []

    def weight_loss_model(self) -> tuple[onnx.ModelProto, list[str]] | None:
        """A model computing unconditional losses from the variables (inputs named as them)."""
        return None

    def models_to_check(self) -> list[bytes]:
        """Uploaded models ONNX Runtime must accept before the layer is created."""
        return []

    def conditional_losses(self, outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Losses tied to the apply's inputs, from the graph's outputs (before activity losses)."""
        return []

    def runtime_feeds(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Graph inputs derived from variable values (TF layout in, graph layout out)."""
        return values

    def extra_feeds(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> dict[str, np.ndarray]:
        """Values for ``extra_inputs`` per run (e.g. Dropout's uniform noise)."""
        return {}

    def update_stats(self, outputs: dict[str, np.ndarray],
                     *, training: bool) -> Sequence[tuple[str, np.ndarray, float | None]]:
        """(variable short name, batch statistic, decay) per moving-average update, from the
        graph's outputs (``y`` and the extras), in TF's update order; decay None assigns the value."""
        return []

    # ---- TF's get_config -------------------------------------------------------------
    def get_config(self, dtype: str | None, build_shape: tuple[int | None, ...] | None) -> dict[str, Any]:
        out = {}
        for param in self.all_params():
            out[param.name] = self.config_value(param.name, self.config[param.name])
        return out

    def config_value(self, key: str, value: Any) -> Any:
        if key.endswith("_regularizer"):
            reg = parse_regularizer(value, key)
            return None if reg is None else reg.get_config()
        if key.endswith("_initializer"):
            init = parse_initializer(value, key)
            return None if init is None else init.get_config()
        if isinstance(value, list):
            return tuple(value)
        return value
