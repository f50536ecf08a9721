"""``import layerserve.compat.v1 as tf``: TF1 graph mode whose runs execute on a layerserve server.

Build a graph (placeholders, variable scopes, ``tf.layers``, ops), then ``tf.Session().run``:
each run is one request that runs the pruned graph (registered once as a program) on the
server, where the layers and variables are hosted. See the README's "TF1 graph mode".
"""

from __future__ import annotations

import builtins
import types
from typing import Any

import numpy as np

from layerserve.compat.v1 import dtypes, errors, initializers, layers, losses, nn, summary, train
from layerserve.compat.v1.clip_ops import clip_by_global_norm, clip_by_norm, global_norm
from layerserve.compat.v1.dtypes import DType, as_dtype, bool, float16, float32, float64, int32, int64, string
from layerserve.compat.v1.gradients import gradients
from layerserve.compat.v1.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    TensorShape,
    add_to_collection,
    add_to_collections,
    control_dependencies,
    get_collection,
    get_collection_ref,
    get_default_graph,
    name_scope,
    reset_default_graph,
)
from layerserve.compat.v1.initializers import (
    constant_initializer,
    glorot_normal_initializer,
    glorot_uniform_initializer,
    ones_initializer,
    random_normal_initializer,
    random_uniform_initializer,
    truncated_normal_initializer,
    variance_scaling_initializer,
    zeros_initializer,
)
from layerserve.compat.v1.math_ops import (
    abs,
    add,
    add_n,
    argmax,
    argmin,
    cast,
    ceil,
    clip_by_value,
    concat,
    constant,
    convert_to_tensor,
    cos,
    divide,
    equal,
    exp,
    expand_dims,
    fill,
    floor,
    floordiv,
    floormod,
    gather,
    greater,
    greater_equal,
    identity,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    multiply,
    negative,
    no_op,
    not_equal,
    one_hot,
    ones,
    ones_like,
    pow,
    range,
    reciprocal,
    reduce_all,
    reduce_any,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    reshape,
    round,
    rsqrt,
    shape,
    sigmoid,
    sign,
    sin,
    size,
    sqrt,
    square,
    squared_difference,
    squeeze,
    stack,
    stop_gradient,
    subtract,
    tanh,
    tile,
    transpose,
    truediv,
    where,
    zeros,
    zeros_like,
)
from layerserve.compat.v1.session import InteractiveSession, Session, export, get_default_session
from layerserve.compat.v1.variables import (
    AUTO_REUSE,
    Variable,
    VariableScope,
    assign,
    assign_add,
    assign_sub,
    get_variable,
    get_variable_scope,
    global_variables,
    global_variables_initializer,
    local_variables_initializer,
    trainable_variables,
    variable_scope,
    variables_initializer,
)
from layerserve.connection import connect

__all__ = [
    "AUTO_REUSE", "DType", "Graph", "GraphKeys", "InteractiveSession", "Operation", "Session", "Tensor",
    "TensorShape", "Variable", "VariableScope", "abs", "add", "add_n", "add_to_collection", "add_to_collections",
    "argmax", "argmin", "as_dtype", "assign", "assign_add", "assign_sub", "bool", "cast", "ceil", "clip_by_value",
    "concat", "connect", "constant", "constant_initializer", "control_dependencies", "convert_to_tensor", "cos",
    "divide", "dtypes", "equal", "errors", "exp", "export", "expand_dims", "fill", "float16", "float32", "float64", "floor",
    "floordiv", "floormod", "gather", "get_collection", "get_collection_ref", "get_default_graph",
    "get_default_session", "get_variable", "get_variable_scope", "global_variables", "global_variables_initializer",
    "glorot_normal_initializer", "glorot_uniform_initializer", "gradients", "greater", "greater_equal", "group", "identity",
    "initializers", "int32", "int64", "layers", "less", "less_equal", "local_variables_initializer", "log", "log1p",
    "logical_and", "logical_not", "logical_or", "losses", "math", "matmul", "maximum", "minimum", "multiply", "name_scope",
    "negative", "newaxis", "nn", "no_op", "not_equal", "one_hot", "ones", "ones_initializer", "ones_like",
    "placeholder", "placeholder_with_default", "pow", "random_normal_initializer", "random_uniform_initializer",
    "range", "reciprocal", "reduce_all", "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
    "reduce_sum", "reset_default_graph", "reshape", "round", "rsqrt", "shape", "sigmoid", "sign", "sin", "size",
    "sqrt", "square", "squared_difference", "squeeze", "stack", "stop_gradient", "string", "subtract", "summary", "tanh",
    "tile", "train", "trainable_variables", "transpose", "truediv", "truncated_normal_initializer", "tuple",
    "variable_scope", "variables_initializer", "variance_scaling_initializer", "where", "zeros", "zeros_initializer",
    "zeros_like", "clip_by_global_norm", "clip_by_norm", "global_norm",
]

newaxis = None

# ``tf.math``: the same ops under their tf.math names.
math = types.SimpleNamespace(**{name: globals()[name] for name in (
    "abs", "add", "add_n", "argmax", "argmin", "ceil", "cos", "divide", "equal", "exp", "floor", "floordiv",
    "floormod", "greater", "greater_equal", "less", "less_equal", "log", "log1p", "logical_and", "logical_not",
    "logical_or", "maximum", "minimum", "multiply", "negative", "not_equal", "pow", "reciprocal", "reduce_all",
    "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum", "round", "rsqrt",
    "sigmoid", "sign", "sin", "sqrt", "square", "squared_difference", "subtract", "tanh", "truediv")},
    softplus=nn.softplus, l2_normalize=nn.l2_normalize)


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A graph input; every run that needs it must feed it."""
    g = get_default_graph()
    op = g.new_operation("Placeholder", name or "Placeholder", [])
    given = shape.dims if isinstance(shape, TensorShape) else shape
    dims = None if given is None else [None if d is None or (isinstance(d, int) and d < 0) else int(d) for d in given]
    return g.add_output(op, as_dtype(dtype), TensorShape(dims))


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """The default's value unless fed."""
    default = convert_to_tensor(input)
    g = default.graph
    op = g.new_operation("PlaceholderWithDefault", name or "PlaceholderWithDefault", [default])
    dims = None if shape is None else [None if d is None else int(d) for d in shape]
    out = g.add_output(op, default.dtype, TensorShape(dims))
    g.record(op, "Identity", [default], [out.name])
    return out


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An Operation that runs every input."""
    g = get_default_graph()
    flat: list[Any] = []
    for item in inputs:
        flat.extend(item if isinstance(item, (list, builtins.tuple)) else [item])
    from layerserve.compat.v1.graph import as_operation

    ops = [as_operation(i, g) for i in flat]
    with g.control_dependencies(ops):
        return no_op(name=name or "group_deps")


def tuple(tensors: Any, name: str | None = None, control_inputs: Any = None) -> list[Any]:
    """TF's ``tf.tuple``: each output waits for all the inputs."""
    g = get_default_graph()
    gate = group(*[t for t in tensors if t is not None], *(control_inputs or []))
    with g.control_dependencies([gate]):
        return [None if t is None else identity(t) for t in tensors]


def disable_eager_execution() -> None:
    """Graph mode is the only mode here."""


def disable_v2_behavior() -> None:
    """Graph mode is the only mode here."""


def executing_eagerly() -> builtins.bool:
    return False


def set_random_seed(seed: int) -> None:
    np.random.seed(seed)
