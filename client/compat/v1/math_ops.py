"""TF's array and math ops on graph tensors: each records ONNX nodes under TF's op name."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from layerserve._tracing import ONNX_TYPES
from layerserve.compat.v1 import dtypes
from layerserve.compat.v1.dtypes import DType, as_dtype
from layerserve.compat.v1.graph import Graph, Operation, Tensor, TensorShape, get_default_graph
from layerserve.compat.v1.shapes import infer

__all__ = [
    "abs", "add", "add_n", "argmax", "argmin", "binary", "cast", "ceil", "clip_by_value", "composite", "concat",
    "constant", "convert_to_tensor", "cos", "divide", "equal", "exp", "expand_dims", "fill", "floor", "floordiv",
    "floormod", "gather", "greater", "greater_equal", "identity", "less", "less_equal", "log", "log1p",
    "logical_and", "logical_not", "logical_or", "matmul", "maximum", "minimum", "multiply", "negative", "no_op",
    "not_equal", "one_hot", "ones", "ones_like", "op", "pow", "range", "reciprocal", "reduce_all", "reduce_any",
    "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum", "reshape", "round", "rsqrt", "shape",
    "sigmoid", "sign", "sin", "size", "sqrt", "square", "squared_difference", "squeeze", "stack",
    "stop_gradient", "strided_slice", "subtract", "tanh", "tile", "transpose", "truediv", "where", "zeros",
    "zeros_like",
]

_TF_TYPES = {"Add": "AddV2", "Sub": "Sub", "Mul": "Mul", "Div": "RealDiv", "Pow": "Pow", "Max": "Maximum",
             "Min": "Minimum", "Less": "Less", "LessOrEqual": "LessEqual", "Greater": "Greater",
             "GreaterOrEqual": "GreaterEqual", "Equal": "Equal", "And": "LogicalAnd", "Or": "LogicalOr"}
_DEFAULT_NAMES = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "truediv", "Pow": "pow", "Max": "Maximum",
                  "Min": "Minimum", "Less": "Less", "LessOrEqual": "LessEqual", "Greater": "Greater",
                  "GreaterOrEqual": "GreaterEqual", "Equal": "Equal", "And": "LogicalAnd", "Or": "LogicalOr"}


# ---- the recorder ------------------------------------------------------------------------
def op(op_type: str, inputs: Sequence[Tensor | None], name: str, tf_type: str | None = None, *,
       domain: str = "", out: tuple[DType, TensorShape] | None = None, **attrs: Any) -> Tensor:
    """A one-node op: an Operation named ``name`` whose output ``name:0`` is the ONNX node's."""
    present = [t for t in inputs if t is not None]
    g = present[0].graph if present else get_default_graph()
    if g._control_stack:
        inputs = [None if t is None else g.value_after_dependencies(t) for t in inputs]
        present = [t for t in inputs if t is not None]
    dtype, shape = out if out is not None else infer(g, op_type, list(inputs), attrs)
    operation = g.new_operation(tf_type or op_type, name[:-1] if name.endswith("/") else name, present)
    if name.endswith("/"):  # an absolute name (a composite op's scope): exactly that
        g.operations.pop(operation.name)
        operation.name = name[:-1]
        g.operations[operation.name] = operation
    result = g.add_output(operation, dtype, shape)
    g.record(operation, op_type, ["" if t is None else t for t in inputs], [result.name], domain=domain, **attrs)
    return result


@contextlib.contextmanager
def composite(name: str | None, default: str) -> Iterator[str]:
    """TF's ``with name_scope(name, default) as scope``: inner ops inside, the last one named ``scope``."""
    with get_default_graph().name_scope(name or default) as scope:
        yield scope


def _graph_of(values: Sequence[Any]) -> Graph:
    for v in values:
        if isinstance(v, Tensor):
            return v.graph
    return get_default_graph()


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None, like: Tensor | None = None) -> Tensor:
    """A tensor as is (dtype checked), a Variable's value, or a constant."""
    if hasattr(value, "_as_graph_element") and not isinstance(value, Tensor):
        value = value._as_graph_element()
    if isinstance(value, Tensor):
        if dtype is not None and as_dtype(dtype) != value.dtype:
            raise ValueError(f"Tensor conversion requested dtype {as_dtype(dtype)} for Tensor with dtype "
                             f"{value.dtype}: {value!r}")
        return value
    if dtype is None and like is not None:
        dtype = like.dtype
    return constant(value, dtype=dtype, name=name or "Const", _hidden=like is not None,
                    _graph=like.graph if like is not None else None)


def _numpy_value(value: Any, dtype: Any) -> np.ndarray:
    if dtype is not None:
        return np.asarray(value, dtype=np.dtype(as_dtype(dtype).as_numpy_dtype))
    array = np.asarray(value)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)  # Python floats become float32, as in TF
    if array.dtype == np.int64 and not isinstance(value, (np.ndarray, np.generic)):
        array = array.astype(np.int32)
    return array


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const", verify_shape: bool = False, *,
             _hidden: bool = False, _graph: Graph | None = None) -> Tensor:
    array = _numpy_value(value, dtype)
    if shape is not None:
        target = tuple(int(d) for d in shape)
        array = np.broadcast_to(array, target).copy() if array.size == 1 else array.reshape(target)
    g = _graph or get_default_graph()
    if _hidden:  # an operand made from a Python number: a graph constant without an Operation
        name_ = g.fresh()
        g.constants[name_] = array
        return Tensor(g, name_, as_dtype(array.dtype), TensorShape(list(array.shape)), None)
    operation = g.new_operation("Const", name, [])
    result = g.add_output(operation, as_dtype(array.dtype), TensorShape(list(array.shape)))
    g.constants[result.name] = array
    return result


def _ints(values: Sequence[int], g: Graph) -> Tensor:
    return constant(np.asarray(list(values), np.int64), _hidden=True, _graph=g)


def binary(op_type: str, x: Any, y: Any, name: str | None = None) -> Tensor:
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    a = convert_to_tensor(x, like=like)
    b = convert_to_tensor(y, like=a)
    if a.dtype != b.dtype:
        raise TypeError(f"Input 'y' of '{_TF_TYPES.get(op_type, op_type)}' Op has type {b.dtype} that does not match "
                        f"type {a.dtype} of argument 'x'.")
    return op(op_type, [a, b], name or _DEFAULT_NAMES.get(op_type, op_type), _TF_TYPES.get(op_type))


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Add", x, y, name or "Add")


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Sub", x, y, name or "Sub")


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Mul", x, y, name or "Mul")


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """``/``: integers are divided as float64 (TF's true division)."""
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    a = convert_to_tensor(x, like=like)
    b = convert_to_tensor(y, like=a)
    if a.dtype.is_integer:
        with composite(name, "truediv") as scope:
            a, b = cast(a, dtypes.float64), cast(b, dtypes.float64)
            return op("Div", [a, b], scope, "RealDiv")
    return binary("Div", a, b, name or "truediv")


divide = truediv


def floordiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    a = convert_to_tensor(x, like=like)
    b = convert_to_tensor(y, like=a)
    with composite(name, "floordiv") as scope:
        if a.dtype.is_integer:
            q = floor(binary("Div", cast(a, dtypes.float64), cast(b, dtypes.float64)))
            return op("Cast", [q], scope, "FloorDiv", to=ONNX_TYPES[a.dtype])
        return op("Floor", [binary("Div", a, b)], scope, "FloorDiv")


def floormod(x: Any, y: Any, name: str | None = None) -> Tensor:
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    a = convert_to_tensor(x, like=like)
    b = convert_to_tensor(y, like=a)
    if a.dtype.is_integer:
        return op("Mod", [a, b], name or "FloorMod", "FloorMod", fmod=0)
    with composite(name, "FloorMod") as scope:
        return op("Sub", [a, multiply(floor(binary("Div", a, b)), b)], scope, "FloorMod")


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Pow", x, y, name or "Pow")


def maximum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Max", x, y, name or "Maximum")


def minimum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Min", x, y, name or "Minimum")


def equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Equal", x, y, name or "Equal")


def not_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    with composite(name, "NotEqual") as scope:
        return op("Not", [binary("Equal", x, y)], scope, "NotEqual")


def less(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Less", x, y, name or "Less")


def less_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("LessOrEqual", x, y, name or "LessEqual")


def greater(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Greater", x, y, name or "Greater")


def greater_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("GreaterOrEqual", x, y, name or "GreaterEqual")


def logical_and(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("And", x, y, name or "LogicalAnd")


def logical_or(x: Any, y: Any, name: str | None = None) -> Tensor:
    return binary("Or", x, y, name or "LogicalOr")


def logical_not(x: Any, name: str | None = None) -> Tensor:
    return op("Not", [convert_to_tensor(x)], name or "LogicalNot", "LogicalNot")


def _unary(op_type: str, tf_type: str, x: Any, name: str | None, **attrs: Any) -> Tensor:
    return op(op_type, [convert_to_tensor(x)], name or tf_type, tf_type, **attrs)


def negative(x: Any, name: str | None = None) -> Tensor:
    return _unary("Neg", "Neg", x, name)


def abs(x: Any, name: str | None = None) -> Tensor:
    return _unary("Abs", "Abs", x, name)


def sqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sqrt", "Sqrt", x, name)


def rsqrt(x: Any, name: str | None = None) -> Tensor:
    with composite(name, "Rsqrt") as scope:
        return op("Reciprocal", [sqrt(x)], scope, "Rsqrt")


def square(x: Any, name: str | None = None) -> Tensor:
    t = convert_to_tensor(x)
    return op("Mul", [t, t], name or "Square", "Square")


def squared_difference(x: Any, y: Any, name: str | None = None) -> Tensor:
    with composite(name, "SquaredDifference") as scope:
        d = subtract(x, y)
        return op("Mul", [d, d], scope, "SquaredDifference")


def exp(x: Any, name: str | None = None) -> Tensor:
    return _unary("Exp", "Exp", x, name)


def log(x: Any, name: str | None = None) -> Tensor:
    return _unary("Log", "Log", x, name)


def log1p(x: Any, name: str | None = None) -> Tensor:
    with composite(name, "Log1p") as scope:
        return op("Log", [add(x, 1.0)], scope, "Log1p")


def tanh(x: Any, name: str | None = None) -> Tensor:
    return _unary("Tanh", "Tanh", x, name)


def sigmoid(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sigmoid", "Sigmoid", x, name)


def sin(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sin", "Sin", x, name)


def cos(x: Any, name: str | None = None) -> Tensor:
    return _unary("Cos", "Cos", x, name)


def floor(x: Any, name: str | None = None) -> Tensor:
    return _unary("Floor", "Floor", x, name)


def ceil(x: Any, name: str | None = None) -> Tensor:
    return _unary("Ceil", "Ceil", x, name)


def round(x: Any, name: str | None = None) -> Tensor:
    return _unary("Round", "Round", x, name)


def sign(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sign", "Sign", x, name)


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    return _unary("Reciprocal", "Reciprocal", x, name)


def identity(x: Any, name: str | None = None) -> Tensor:
    return _unary("Identity", "Identity", x, name)


def stop_gradient(x: Any, name: str | None = None) -> Tensor:
    """Identity whose output the server's gradients treat as a constant."""
    from layerserve.compat.v1.graph import DOMAIN

    t = convert_to_tensor(x)
    return op("StopGradient", [t], name or "StopGradient", domain=DOMAIN, out=(t.dtype, t.shape))


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    t, target = convert_to_tensor(x), as_dtype(dtype)
    if target == "string" or str(target) not in ONNX_TYPES:
        raise TypeError(f"Cast to {target} is not supported")
    return op("Cast", [t], name or "Cast", "Cast", to=ONNX_TYPES[str(target)])


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False, adjoint_a: bool = False,
           adjoint_b: bool = False, a_is_sparse: bool = False, b_is_sparse: bool = False,
           output_type: Any = None, name: str | None = None) -> Tensor:
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    x = convert_to_tensor(a, like=like)
    y = convert_to_tensor(b, like=x)
    if transpose_a or adjoint_a:
        x = _swap_last(x)
    if transpose_b or adjoint_b:
        y = _swap_last(y)
    return op("MatMul", [x, y], name or "MatMul", "MatMul")


def _swap_last(x: Tensor) -> Tensor:
    rank = x.shape.ndims
    if rank is None:
        raise ValueError("transpose_a/b need a tensor of known rank")
    perm = [*builtins.range(rank - 2), rank - 1, rank - 2]
    return op("Transpose", [x], "transpose", "Transpose", perm=perm)


def add_n(inputs: Sequence[Any], name: str | None = None) -> Tensor:
    tensors = [convert_to_tensor(t) for t in inputs]
    if not tensors:
        raise ValueError("inputs must be a list of at least one Tensor/IndexedSlices with the same dtype and shape")
    if len(tensors) == 1:
        return identity(tensors[0], name=name or "AddN")
    return op("Sum", tensors, name or "AddN", "AddN")


def _axes(t: Tensor, axis: Any) -> Tensor | None:
    if axis is None:
        return None
    if isinstance(axis, Tensor):
        return cast(axis, dtypes.int64) if axis.dtype != "int64" else axis
    values = [int(axis)] if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
    return _ints(values, t.graph)


def _reduce(op_type: str, tf_type: str, x: Any, axis: Any, keepdims: bool | None, name: str | None,
            keep_dims: bool | None = None) -> Tensor:
    t = convert_to_tensor(x)
    keep = bool(keepdims if keepdims is not None else keep_dims)
    axes = _axes(t, axis)
    if axes is not None and axes.name in t.graph.constants and t.graph.constants[axes.name].size == 0:
        return identity(t, name=name or tf_type)
    inputs = [t] if axes is None else [t, axes]
    return op(op_type, inputs, name or tf_type, tf_type, keepdims=int(keep))


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: bool | None = None) -> Tensor:
    return _reduce("ReduceSum", "Sum", input_tensor, axis if axis is not None else reduction_indices, keepdims,
                   name, keep_dims)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None,
                reduction_indices: Any = None, keep_dims: bool | None = None) -> Tensor:
    return _reduce("ReduceMean", "Mean", input_tensor, axis if axis is not None else reduction_indices, keepdims,
                   name, keep_dims)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: bool | None = None) -> Tensor:
    return _reduce("ReduceMax", "Max", input_tensor, axis if axis is not None else reduction_indices, keepdims,
                   name, keep_dims)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None,
               reduction_indices: Any = None, keep_dims: bool | None = None) -> Tensor:
    return _reduce("ReduceMin", "Min", input_tensor, axis if axis is not None else reduction_indices, keepdims,
                   name, keep_dims)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None,
                reduction_indices: Any = None, keep_dims: bool | None = None) -> Tensor:
    return _reduce("ReduceProd", "Prod", input_tensor, axis if axis is not None else reduction_indices, keepdims,
                   name, keep_dims)


def reduce_all(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None) -> Tensor:
    with composite(name, "All") as scope:
        t = cast(input_tensor, dtypes.int32)
        return op("Cast", [_reduce("ReduceMin", "Min", t, axis, keepdims, None)], scope, "All", to=ONNX_TYPES["bool"])


def reduce_any(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, name: str | None = None) -> Tensor:
    with composite(name, "Any") as scope:
        t = cast(input_tensor, dtypes.int32)
        return op("Cast", [_reduce("ReduceMax", "Max", t, axis, keepdims, None)], scope, "Any", to=ONNX_TYPES["bool"])


def argmax(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    return _arg("ArgMax", input, axis if axis is not None else dimension, name, output_type)


def argmin(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = dtypes.int64) -> Tensor:
    return _arg("ArgMin", input, axis if axis is not None else dimension, name, output_type)


def _arg(op_type: str, x: Any, axis: Any, name: str | None, output_type: Any) -> Tensor:
    t, out = convert_to_tensor(x), as_dtype(output_type)
    a = 0 if axis is None else int(axis)
    if out == "int64":
        return op(op_type, [t], name or op_type, op_type, axis=a, keepdims=0)
    with composite(name, op_type) as scope:
        return op("Cast", [op(op_type, [t], op_type, op_type, axis=a, keepdims=0)], scope, op_type,
                  to=ONNX_TYPES[str(out)])


def _shape_tensor(shape: Any, g: Graph) -> Tensor:
    """A shape given as ints, a tensor, or a list mixing both, as an int64 vector."""
    if isinstance(shape, Tensor):
        return cast(shape, dtypes.int64) if shape.dtype != "int64" else shape
    items = list(shape)
    if all(isinstance(d, (int, np.integer)) for d in items):
        return _ints([int(d) for d in items], g)
    parts = []
    for d in items:
        if isinstance(d, Tensor):
            d64 = cast(d, dtypes.int64) if d.dtype != "int64" else d
            parts.append(op("Reshape", [d64, _ints([1], g)], "Reshape", "Reshape"))
        else:
            parts.append(_ints([int(d)], g))
    return op("Concat", parts, "stack", "Pack", axis=0)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    t = convert_to_tensor(tensor)
    return op("Reshape", [t, _shape_tensor(shape, t.graph)], name or "Reshape", "Reshape")


def transpose(a: Any, perm: Sequence[int] | None = None, name: str = "transpose", conjugate: bool = False) -> Tensor:
    t = convert_to_tensor(a)
    if perm is None:
        if t.shape.ndims is None:
            raise ValueError("transpose without perm needs a tensor of known rank")
        perm = list(reversed(builtins.range(t.shape.ndims)))
    return op("Transpose", [t], name, "Transpose", perm=[int(p) for p in perm])


def concat(values: Sequence[Any], axis: int, name: str = "concat") -> Tensor:
    tensors = [convert_to_tensor(v) for v in values]
    if len(tensors) == 1:
        return identity(tensors[0], name=name)
    return op("Concat", tensors, name, "ConcatV2", axis=int(axis))


def expand_dims(input: Any, axis: int, name: str | None = None, dim: int | None = None) -> Tensor:
    t = convert_to_tensor(input)
    return op("Unsqueeze", [t, _ints([int(axis if axis is not None else dim)], t.graph)], name or "ExpandDims",
              "ExpandDims")


def stack(values: Sequence[Any], axis: int = 0, name: str = "stack") -> Tensor:
    tensors = [convert_to_tensor(v) for v in values]
    g = tensors[0].graph
    rank = tensors[0].shape.ndims
    a = axis + rank + 1 if axis < 0 and rank is not None else axis
    with g.name_scope(name) as scope:
        parts = [op("Unsqueeze", [t, _ints([a], g)], "ExpandDims", "ExpandDims") for t in tensors]
        return op("Concat", parts, scope, "Pack", axis=a)


def squeeze(input: Any, axis: Any = None, name: str | None = None, squeeze_dims: Any = None) -> Tensor:
    t = convert_to_tensor(input)
    axis = axis if axis is not None else squeeze_dims
    if axis is None:
        return op("Squeeze", [t], name or "Squeeze", "Squeeze")
    axes = [int(axis)] if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
    return op("Squeeze", [t, _ints(axes, t.graph)], name or "Squeeze", "Squeeze")


def tile(input: Any, multiples: Any, name: str | None = None) -> Tensor:
    t = convert_to_tensor(input)
    return op("Tile", [t, _shape_tensor(multiples, t.graph)], name or "Tile", "Tile")


def one_hot(indices: Any, depth: int, on_value: Any = None, off_value: Any = None, axis: int | None = None,
            dtype: Any = None, name: str | None = None) -> Tensor:
    """Rows of ``off_value`` with ``on_value`` at each index (an index out of range gives no ``on_value``)."""
    t = convert_to_tensor(indices)
    out = as_dtype(dtype) if dtype is not None else as_dtype(np.asarray(on_value).dtype) if on_value is not None \
        else dtypes.float32
    np_out = np.dtype(out.as_numpy_dtype)
    on = np.asarray(1 if on_value is None else on_value, np_out)
    off = np.asarray(0 if off_value is None else off_value, np_out)
    g = t.graph
    rank = t.shape.ndims
    if rank is None:
        raise ValueError("one_hot needs indices of known rank")
    a = rank if axis is None or axis == -1 else int(axis)
    with composite(name, "one_hot") as scope:
        idx = op("Unsqueeze", [cast(t, dtypes.int64) if t.dtype != "int64" else t, _ints([a], g)], "ExpandDims",
                 "ExpandDims")
        positions = constant(np.arange(int(depth), dtype=np.int64).reshape([int(depth)] + [1] * (rank - a)),
                             _hidden=True, _graph=g)
        hit = op("Equal", [idx, positions], "Equal", "Equal")
        return op("Where", [hit, constant(on, _hidden=True, _graph=g), constant(off, _hidden=True, _graph=g)],
                  scope, "OneHot")


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    cond = convert_to_tensor(condition)
    if x is None and y is None:
        with composite(name, "Where") as scope:
            return op("Transpose", [op("NonZero", [cond], "NonZero")], scope, "Where", perm=[1, 0])
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    a = convert_to_tensor(x, like=like)
    b = convert_to_tensor(y, like=a)
    if cond.shape.ndims == 1 and a.shape.ndims is not None and a.shape.ndims > 1:  # TF1 selects rows
        cond = op("Reshape", [cond, _ints([-1] + [1] * (a.shape.ndims - 1), cond.graph)], "Reshape", "Reshape")
    return op("Where", [cond, a, b], name or "Select", "Select")


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(t)
    with composite(name, "clip_by_value") as scope:
        low = minimum(x, clip_value_max)
        return op("Max", [low, convert_to_tensor(clip_value_min, like=x)], scope, "Maximum")


def gather(params: Any, indices: Any, validate_indices: Any = None, name: str | None = None, axis: int = 0,
           batch_dims: int = 0) -> Tensor:
    p = convert_to_tensor(params)
    i = convert_to_tensor(indices, like=None) if not isinstance(indices, Tensor) else indices
    return op("Gather", [p, i], name or "GatherV2", "GatherV2", axis=int(axis))


def shape(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    t, out = convert_to_tensor(input), as_dtype(out_type)
    if out == "int64":
        return op("Shape", [t], name or "Shape", "Shape")
    with composite(name, "Shape") as scope:
        return op("Cast", [op("Shape", [t], "Shape")], scope, "Shape", to=ONNX_TYPES[str(out)])


def size(input: Any, name: str | None = None, out_type: Any = dtypes.int32) -> Tensor:
    t, out = convert_to_tensor(input), as_dtype(out_type)
    with composite(name, "Size") as scope:
        return op("Cast", [op("Size", [t], "Size")], scope, "Size", to=ONNX_TYPES[str(out)])


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    g = _graph_of([dims, value])
    v = _numpy_value(value, None)
    if not isinstance(dims, Tensor) and all(isinstance(d, (int, np.integer)) for d in dims):
        return constant(np.full([int(d) for d in dims], v, dtype=v.dtype), name=name or "Fill")
    from onnx import numpy_helper

    return op("ConstantOfShape", [_shape_tensor(dims, g)], name or "Fill", "Fill",
              value=numpy_helper.from_array(v.reshape(1)))


def zeros(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    return fill(shape, np.zeros((), np.dtype(as_dtype(dtype).as_numpy_dtype)), name=name or "zeros")


def ones(shape: Any, dtype: Any = dtypes.float32, name: str | None = None) -> Tensor:
    return fill(shape, np.ones((), np.dtype(as_dtype(dtype).as_numpy_dtype)), name=name or "ones")


def _like(tensor: Any, value: float, dtype: Any, name: str | None, default: str) -> Tensor:
    t = convert_to_tensor(tensor)
    out = as_dtype(dtype) if dtype is not None else t.dtype
    from onnx import numpy_helper

    v = np.full((1,), value, dtype=np.dtype(out.as_numpy_dtype))
    with composite(name, default) as scope:
        return op("ConstantOfShape", [op("Shape", [t], "Shape")], scope, "Fill", value=numpy_helper.from_array(v))


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    return _like(tensor, 0.0, dtype, name, "zeros_like")


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None, optimize: bool = True) -> Tensor:
    return _like(tensor, 1.0, dtype, name, "ones_like")


def range(start: Any, limit: Any = None, delta: Any = 1, dtype: Any = None, name: str = "range") -> Tensor:
    if limit is None:
        start, limit = 0, start
    out = as_dtype(dtype) if dtype is not None else dtypes.float32 if builtins.any(
        isinstance(v, float) for v in (start, limit, delta)) else dtypes.int32
    g = _graph_of([start, limit, delta])
    parts = [convert_to_tensor(v, dtype=out) if not isinstance(v, Tensor) else cast(v, out)
             for v in (start, limit, delta)]
    parts = [op("Reshape", [p, _ints([], g)], "Reshape", "Reshape") for p in parts]
    return op("Range", parts, name, "Range")


def no_op(name: str | None = None) -> Operation:
    g = get_default_graph()
    return g.new_operation("NoOp", name or "NoOp", [])


# ---- indexing ----------------------------------------------------------------------------
def strided_slice(t: Tensor, index: Any) -> Tensor:
    """``x[...]`` with ints, slices, ``...`` and ``None`` (tf.newaxis)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if builtins.any(i is Ellipsis for i in items):
        rank = t.shape.ndims
        if rank is None:
            raise ValueError("indexing with ... needs a tensor of known rank")
        at = items.index(Ellipsis)
        used = builtins.sum(1 for i in items if i is not None and i is not Ellipsis)
        items = items[:at] + [slice(None)] * (rank - used) + items[at + 1:]
    starts, ends, steps, axes, squeeze_axes, new_axes = [], [], [], [], [], []
    axis = 0
    for pos, item in enumerate(items):
        if item is None:
            new_axes.append(pos)
            continue
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            starts.append(int(item))
            ends.append(int(item) + 1 if item != -1 else 2**62)
            steps.append(1)
            axes.append(axis)
            squeeze_axes.append(axis)
        elif isinstance(item, slice):
            if item == slice(None):
                axis += 1
                continue
            step = 1 if item.step is None else int(item.step)
            starts.append(int(item.start) if item.start is not None else (0 if step > 0 else -1))
            ends.append(int(item.stop) if item.stop is not None else (2**62 if step > 0 else -(2**62)))
            steps.append(step)
            axes.append(axis)
        else:
            raise TypeError("Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) and scalar "
                            f"tf.int32/tf.int64 tensors are valid indices, got {item!r}")
        axis += 1
    g = t.graph
    with g.name_scope("strided_slice") as scope:
        out = t
        if axes:
            out = op("Slice", [t, _ints(starts, g), _ints(ends, g), _ints(axes, g), _ints(steps, g)], "Slice",
                     "StridedSlice")
        if squeeze_axes:
            out = op("Squeeze", [out, _ints(squeeze_axes, g)], "Squeeze", "Squeeze")
        if new_axes:
            positions: list[int] = []
            dims_before = 0
            for item in items:
                if item is None:
                    positions.append(dims_before + len(positions))
                elif not (isinstance(item, (int, np.integer)) and not isinstance(item, bool)):
                    dims_before += 1
            out = op("Unsqueeze", [out, _ints(positions, g)], "ExpandDims", "ExpandDims")
        return op("Identity", [out], scope, "StridedSlice")
