"""``tf.layers`` in graph mode: the hosted layer classes, called on symbolic tensors.

Called on a graph tensor, a layer takes its variable scope as TF does (at its first call, in the
scope current then), is built on the server for the tensor's static shape, and records a
``LayerCall`` node that the server inlines from the layer's own ONNX graph. Called on arrays it
is the eager client layer. ``Layer`` subclasses run their ``build``/``call`` here, on graph
tensors, with hosted variables.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from layerserve import _routes
from layerserve import layers as hosted
from layerserve.compat.v1 import math_ops
from layerserve.compat.v1.dtypes import as_dtype
from layerserve.compat.v1.graph import DOMAIN, Graph, GraphKeys, Operation, Tensor, TensorShape, get_default_graph
from layerserve.compat.v1.server import binding
from layerserve.compat.v1.variables import AUTO_REUSE, Variable, get_variable, track, variable_scope

__all__ = ["InputSpec", "Layer", *hosted._CLASSES, *hosted._FUNCTIONS]

InputSpec = hosted.InputSpec
_REGULARIZER_ARGS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "beta_regularizer",
                     "gamma_regularizer", "depthwise_regularizer", "pointwise_regularizer")
_ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax", "elu": "Elu",
                   "selu": "Selu", "softplus": "Softplus", "relu6": "Relu6", "softsign": "Softsign"}


class _CallState:
    """What the client knows about a hosted layer once it was called in a graph."""

    def __init__(self, scope: str, name_scope: str) -> None:
        self.scope, self.name_scope = scope, name_scope
        self.variables: list[Variable] = []
        self.updates: list[tuple[Tensor, Operation]] = []  # (input, update op)
        self.losses: list[tuple[Tensor | None, Tensor]] = []  # (input or None, loss)


def _wire_callable(value: Any) -> bool:
    return value is not None and callable(value) and not hasattr(value, "to_wire") and not isinstance(value, str)


class _GraphMode:
    """Mixin over a hosted layer class: symbolic calls record a LayerCall node."""

    _graph_scope: str | None = None
    _graph_reuse: Any = None
    _local_regularizers: dict[str, Callable[[Any], Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init = next(c.__dict__["__init__"] for c in type(self).__mro__[2:] if "__init__" in c.__dict__)
        sig = inspect.signature(init)  # the hosted class's own signature
        named = dict(sig.bind_partial(None, *args, **kwargs).arguments)
        named.pop("self", None)
        extra = named.pop("kwargs", {}) if "kwargs" in sig.parameters else {}
        named.update(extra)
        self._local_regularizers = {k: named.pop(k) for k in _REGULARIZER_ARGS if _wire_callable(named.get(k))}
        named.setdefault("_connection", binding(get_default_graph()).conn)
        super().__init__(**named)

    def __call__(self, inputs: Any, *args: Any, training: Any = None, **kwargs: Any) -> Any:
        if isinstance(inputs, Tensor):
            return _graph_call(self, inputs, training)  # type: ignore[arg-type]
        return super().__call__(inputs, *args, training=training, **kwargs)  # type: ignore[misc]

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__call__(inputs, *args, **kwargs)

    def _state(self) -> _CallState | None:
        return get_default_graph().layer_calls.get(self.id)  # type: ignore[attr-defined, no-any-return]

    def _graph_list(self, key: str) -> Any:
        state = self._state()
        if state is None:
            return getattr(super(), key)
        if key == "variables":
            return list(state.variables)
        if key == "trainable_variables":
            return [v for v in state.variables if v.trainable]
        return [v for v in state.variables if not v.trainable]

    variables = property(lambda self: self._graph_list("variables"))
    weights = variables
    trainable_variables = property(lambda self: self._graph_list("trainable_variables"))
    trainable_weights = trainable_variables
    non_trainable_variables = property(lambda self: self._graph_list("non_trainable_variables"))
    non_trainable_weights = non_trainable_variables

    @property
    def updates(self) -> Any:
        state = self._state()
        return [op for _, op in state.updates] if state is not None else super().updates  # type: ignore[misc]

    def get_updates_for(self, inputs: Any) -> Any:
        state = self._state()
        if state is None:
            return super().get_updates_for(inputs)  # type: ignore[misc]
        return [op for x, op in state.updates if _depends_on(x, inputs)]

    @property
    def losses(self) -> Any:
        state = self._state()
        return [loss for _, loss in state.losses] if state is not None else super().losses  # type: ignore[misc]

    def get_losses_for(self, inputs: Any) -> Any:
        state = self._state()
        if state is None:
            return super().get_losses_for(inputs)  # type: ignore[misc]
        return [loss for x, loss in state.losses if _depends_on(x, inputs)]


def _depends_on(t: Tensor | None, inputs: Any) -> bool:
    """Whether ``t`` is computed from ``inputs`` (TF's rule for conditional losses and updates)."""
    if t is None or inputs is None:
        return t is None and inputs is None
    wanted = {id(i) for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs])}
    stack, seen = [t], set()
    while stack:
        cur = stack.pop()
        if id(cur) in wanted:
            return True
        if id(cur) in seen or cur.op is None:
            continue
        seen.add(id(cur))
        stack.extend(cur.op.inputs)
    return False


def _scope_for(layer: Any, g: Graph) -> tuple[str, str, bool]:
    """(full variable scope, its short name, reuse) at a layer's first call, as TF's ``_set_scope``."""
    store = g.var_store
    current = store.current
    fixed = layer._graph_scope
    short = fixed if fixed is not None else store.unique_scope(current.name, layer._base_for_scope())
    full = f"{current.name}/{short}" if current.name else short
    reuse: Any = layer._graph_reuse if layer._graph_reuse is not None else current.reuse
    if reuse is AUTO_REUSE:
        reuse = any(name.startswith(full + "/") for name in store.variables)
    return full, short, bool(reuse)


def _final_op_name(layer: Any, config: dict[str, Any], training: Any, rank: int | None) -> str:
    """The name TF gives the op computing a layer's output (``dense/BiasAdd``)."""
    activation = config.get("activation")
    if isinstance(activation, str) and activation in _ACTIVATION_OPS:
        return _ACTIVATION_OPS[activation]
    cls = type(layer).__mro__[2].__name__
    if cls.endswith("1D") and ("Pooling" in cls or not config.get("use_bias")):
        return "Squeeze"
    if "Pooling" in cls:
        return ("MaxPool" if cls.startswith("Max") else "AvgPool") + ("3D" if cls.endswith("3D") else "")
    if config.get("use_bias"):
        return "BiasAdd"
    table = {"Dense": "MatMul" if rank == 2 else "Tensordot", "Flatten": "Reshape",
             "BatchNormalization": "FusedBatchNormV3" if rank in (4, 5) and config.get("fused") is not False
             else "batchnorm/add_1", "Dropout": "dropout/SelectV2" if training else "Identity",
             "Conv2D": "Conv2D", "Conv3D": "Conv3D", "Conv2DTranspose": "conv2d_transpose",
             "Conv3DTranspose": "conv3d_transpose", "SeparableConv2D": "separable_conv2d"}
    return table.get(cls, cls)


def _first_call(layer: Any, x: Tensor) -> _CallState:
    g = x.graph
    full, short, reuse = _scope_for(layer, g)
    g.var_store.open(full)
    with g.name_scope(short) as ns:
        state = _CallState(full, ns)
    layer._send(_routes.patch_layer, {"scope": full, "reuse": reuse})
    if x.shape.dims is None:
        raise ValueError(f"Input 0 of layer {layer.name} has an undefined rank; a graph-mode layer needs it")
    layer._send(_routes.build, list(x.shape.dims), str(x.dtype))
    described = layer._describe()
    kinds = {v["name"]: v for v in described["variables"]}
    order = [v["name"] for v in described["variables"]]
    for name in order:
        existing = g.var_store.variables.get(name[:-2])
        if existing is None:
            info = kinds[name]
            with g.name_scope(None):
                existing = Variable.hosted(g, name[:-2], as_dtype(info["dtype"]), tuple(info["shape"]),
                                    trainable=bool(info["trainable"]))
            track(g, existing)
            _weight_loss(layer, g, existing)
        state.variables.append(existing)
    g.layer_calls[layer.id] = state
    return state


def _weight_loss(layer: Any, g: Graph, var: Variable) -> None:
    short = var.name.rsplit("/", 1)[-1][:-2]
    key = {"kernel": "kernel_regularizer", "bias": "bias_regularizer", "gamma": "gamma_regularizer",
           "beta": "beta_regularizer", "depthwise_kernel": "depthwise_regularizer",
           "pointwise_kernel": "pointwise_regularizer"}.get(short)
    reg = layer._local_regularizers.get(key) if key else None
    if reg is None:
        return
    with g.name_scope(f"{var.name[:-2]}/Regularizer/"):
        loss = reg(var)
    if loss is not None:
        g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)


def _training_arg(training: Any) -> tuple[int, Tensor | None]:
    """(mode, tensor): 1 training, 0 inference, -1 chosen per run by a bool tensor."""
    if isinstance(training, Tensor):
        return -1, training
    return (1 if training else 0), None


def _graph_call(layer: Any, x: Tensor, training: Any) -> Tensor:
    g = x.graph
    state = g.layer_calls.get(layer.id) or _first_call(layer, x)
    described = layer._describe()
    config = described["config"]
    shape = layer._send(_routes.compute_output_shape, list(x.shape.dims or [])).body
    mode, flag = _training_arg(training)
    takes_training = type(layer).__mro__[2].__name__ in ("BatchNormalization", "Dropout")
    if not takes_training:
        mode, flag = 0, None
    dtype = as_dtype(described["dtype"] or x.dtype)
    with g.name_scope(state.name_scope):
        y = math_ops.op("LayerCall", [x] + ([flag] if flag is not None else []),
                        _final_op_name(layer, config, mode == 1, x.shape.ndims), type(layer).__mro__[2].__name__, domain=DOMAIN,
                        out=(dtype, TensorShape(shape["output_shape"])), layer=layer.id, training=mode)
        assert y.op is not None
        y.op.deps = [v for v in state.variables if v.trainable]
        if type(layer).__mro__[2].__name__ == "BatchNormalization" and mode != 0:
            _batch_norm_updates(g, state, x, y, flag)
    _activity_loss(layer, g, state, x, y)
    return y


def _batch_norm_updates(g: Graph, state: _CallState, x: Tensor, y: Tensor, flag: Tensor | None) -> None:
    """UPDATE_OPS: one op per moving statistic, per call in training mode (or chosen per run)."""
    for k, var in enumerate(v for v in state.variables if v.name.rsplit("/", 1)[-1].startswith("moving_")):
        name = "AssignMovingAvg" if k == 0 else "AssignMovingAvg_1"
        value = math_ops.op("LayerUpdate", [y] + ([flag] if flag is not None else []), name, "AssignSubVariableOp",
                            domain=DOMAIN, out=(var.dtype, var.shape), variable=var.name)
        assert value.op is not None
        value.op.stateful, value.op.writes = True, var.name
        state.updates.append((x, value.op))
        g.add_to_collection(GraphKeys.UPDATE_OPS, value.op)


def _activity_loss(layer: Any, g: Graph, state: _CallState, x: Tensor, y: Tensor) -> None:
    reg = layer._local_regularizers.get("activity_regularizer")
    if reg is None:
        return
    with g.name_scope(state.name_scope + "ActivityRegularizer/"):
        batch = math_ops.cast(math_ops.shape(y)[0], y.dtype)
        loss = math_ops.truediv(reg(y), batch)
    state.losses.append((x, loss))
    g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)


def _graph_class(cls: type[hosted.Layer]) -> type:
    def base_for_scope(self: Any) -> str:
        given = self._graph_given_name
        return str(given) if given else _snake(cls.__name__)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        self._graph_given_name = kwargs.get("name")
        _GraphMode.__init__(self, *args, **kwargs)

    return type(cls.__name__, (_GraphMode, cls), {"__init__": init, "_base_for_scope": base_for_scope,
                                                  "__module__": __name__, "__doc__": cls.__doc__})


def _snake(name: str) -> str:
    import re

    s = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", s).lower()


def _functional(cls: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    sig = inspect.signature(fn)

    def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(inputs, Tensor):
            return fn(inputs, *args, **kwargs)
        named = dict(sig.bind(inputs, *args, **kwargs).arguments)
        named.pop("inputs")
        named.pop("_connection", None)
        reuse = named.pop("reuse", None)
        training = named.pop("training", False)
        layer = cls(**named)
        layer._graph_scope, layer._graph_reuse = named.get("name"), reuse
        return layer(inputs, training=training)

    call.__name__ = call.__qualname__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


_GRAPH_CLASSES = {name: _graph_class(cls) for name, cls in hosted._CLASSES.items()}
globals().update(_GRAPH_CLASSES)
_FUNCTION_CLASSES = {"dense": "Dense", "dropout": "Dropout", "flatten": "Flatten",
                     "batch_normalization": "BatchNormalization", "conv1d": "Conv1D", "conv2d": "Conv2D",
                     "conv3d": "Conv3D", "conv2d_transpose": "Conv2DTranspose", "conv3d_transpose": "Conv3DTranspose",
                     "separable_conv1d": "SeparableConv1D", "separable_conv2d": "SeparableConv2D",
                     "max_pooling1d": "MaxPooling1D", "max_pooling2d": "MaxPooling2D", "max_pooling3d": "MaxPooling3D",
                     "average_pooling1d": "AveragePooling1D", "average_pooling2d": "AveragePooling2D",
                     "average_pooling3d": "AveragePooling3D"}
globals().update({fname: _functional(_GRAPH_CLASSES[cname], hosted._FUNCTIONS[fname])
                  for fname, cname in _FUNCTION_CLASSES.items()})
dropout: Callable[..., Any]


# ---- Layer subclasses -----------------------------------------------------------------------
class Layer:
    """``tf.layers.Layer`` for subclasses: ``build`` (``add_weight``) and ``call`` run on graph
    tensors at the first call; weights are hosted variables named ``<scope>/<name>:0``."""

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        g = get_default_graph()
        base = _snake(type(self).__name__)
        self._given_name = name
        if name is None:
            counts = g.var_store.scope_counts  # one-based names per class, kept beside the scopes
            key = f"\x00layer:{base}"
            counts[key] = counts.get(key, 0) + 1
            name = base if counts[key] == 1 else f"{base}_{counts[key] - 1}"
        self._name, self.trainable = name, trainable
        self._dtype = as_dtype(dtype) if dtype is not None else None
        self.built = False
        self._scope: str | None = None
        self._name_scope = ""
        self._variables: list[Variable] = []
        self._losses: list[Any] = []
        self._updates: list[Any] = []
        self._activity_regularizer = kwargs.pop("activity_regularizer", None)
        self.input_spec: Any = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def dtype(self) -> Any:
        return self._dtype

    @property
    def scope_name(self) -> str:
        if self._scope is None:
            raise ValueError(f'No name available for layer scope because the layer "{self._name}" has not been '
                             "used yet. The scope name  is determined the first time the layer instance is called. "
                             "You must therefore call the layer before querying `scope_name`.")
        return self._scope

    def build(self, input_shape: Any) -> None:
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return inputs

    def add_weight(self, name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                   regularizer: Any = None, trainable: bool | None = None, constraint: Any = None,
                   **kwargs: Any) -> Variable:
        trainable = self.trainable if trainable is None else bool(trainable) and self.trainable
        var = get_variable(name, shape, dtype or self._dtype or "float32", initializer, regularizer,
                           trainable=trainable)
        self._variables.append(var)
        return var

    add_variable = add_weight

    def add_loss(self, losses: Any, inputs: Any = None) -> None:
        items = losses if isinstance(losses, (list, tuple)) else [losses]
        for loss in items:
            self._losses.append(loss)
            get_default_graph().add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        items = updates if isinstance(updates, (list, tuple)) else [updates]
        self._updates.extend(items)
        for update in items:
            get_default_graph().add_to_collection(GraphKeys.UPDATE_OPS, update)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        g = get_default_graph()
        if self._scope is None:
            store = g.var_store
            short = self._given_name or store.unique_scope(store.current.name, _snake(type(self).__name__))
            with variable_scope(short) as scope:
                self._scope, self._name_scope = scope.name, scope.original_name_scope
        with variable_scope(self._scope_object(), auxiliary_name_scope=False), g.name_scope(self._name_scope):
            if not self.built:
                first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
                shape = first.shape if isinstance(first, Tensor) else TensorShape(list(np.shape(first)))
                if self._dtype is None and isinstance(first, Tensor):
                    self._dtype = first.dtype
                self.build(shape)
                self.built = True
            outputs = self.call(inputs, *args, **kwargs)
        if self._activity_regularizer is not None:
            with g.name_scope(self._name_scope + "ActivityRegularizer/"):
                loss = math_ops.truediv(self._activity_regularizer(outputs),
                                        math_ops.cast(math_ops.shape(outputs)[0], outputs.dtype))
            self.add_loss(loss)
        return outputs

    apply = __call__

    def _scope_object(self) -> Any:
        from layerserve.compat.v1.variables import VariableScope

        return VariableScope(AUTO_REUSE, self._scope or "")

    @property
    def variables(self) -> list[Variable]:
        return list(self._variables)

    weights = variables

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable]

    trainable_weights = trainable_variables

    @property
    def non_trainable_variables(self) -> list[Variable]:
        return [v for v in self._variables if not v.trainable]

    non_trainable_weights = non_trainable_variables

    @property
    def losses(self) -> list[Any]:
        return list(self._losses)

    @property
    def updates(self) -> list[Any]:
        return list(self._updates)

    def get_losses_for(self, inputs: Any) -> list[Any]:
        return list(self._losses)

    def get_updates_for(self, inputs: Any) -> list[Any]:
        return list(self._updates)

    def count_params(self) -> int:
        return int(sum(int(np.prod([d or 0 for d in v.shape.as_list()])) for v in self._variables))
