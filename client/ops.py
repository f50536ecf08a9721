"""TensorFlow's ops by TF's names, for writing a custom layer's ``call`` (``from layerserve import ops as tf``).

Inside ``build`` and ``call`` of a ``layerserve.layers.Layer`` subclass the tensors are symbolic: each
op records an ONNX node, and the recorded graph runs on the server. Python numbers and numpy
arrays mixed in become constants of the tensor's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from layerserve._tracing import ONNX_TYPES, Tensor, as_tensor

__all__ = [
    "UpdateOp", "abs", "add", "assign", "cast", "concat", "cond", "divide", "exp", "expand_dims", "identity",
    "l2_loss", "log", "matmul", "maximum", "minimum", "moving_average_update", "multiply", "negative",
    "nn", "reduce_max", "reduce_mean", "reduce_min", "reduce_sum", "relu", "reshape", "rsqrt", "shape",
    "sigmoid", "softmax", "sqrt", "square", "stop_gradient", "subtract", "tanh", "transpose", "where",
]

Axis = int | Sequence[int] | None


def _tensor(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"layerserve.ops work on the symbolic tensors of a layer's build/call, got {type(x).__name__}")
    return x


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    like = a if isinstance(a, Tensor) else _tensor(b)
    return as_tensor(a, like), as_tensor(b, like)


def _unary(op_type: str, x: Any) -> Tensor:
    t = _tensor(x)
    return t.trace.op(op_type, [t])


def add(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Add", [a, b])


def subtract(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Sub", [a, b])


def multiply(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Mul", [a, b])


def divide(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Div", [a, b])


def maximum(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Max", [a, b])


def minimum(x: Any, y: Any) -> Tensor:
    a, b = _pair(x, y)
    return a.trace.op("Min", [a, b])


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    x, y = _pair(a, b)
    if transpose_a:
        x = _swap_last(x)
    if transpose_b:
        y = _swap_last(y)
    return x.trace.op("MatMul", [x, y])


def _swap_last(x: Tensor) -> Tensor:
    """Transpose the last two axes of a rank-2 tensor (TF's transpose_a/b on matrices)."""
    return x.trace.op("Transpose", [x], perm=[1, 0])


def negative(x: Any) -> Tensor:
    return _unary("Neg", x)


def abs(x: Any) -> Tensor:
    return _unary("Abs", x)


def square(x: Any) -> Tensor:
    t = _tensor(x)
    return t.trace.op("Mul", [t, t])


def sqrt(x: Any) -> Tensor:
    return _unary("Sqrt", x)


def rsqrt(x: Any) -> Tensor:
    t = sqrt(x)
    return t.trace.op("Reciprocal", [t])


def exp(x: Any) -> Tensor:
    return _unary("Exp", x)


def log(x: Any) -> Tensor:
    return _unary("Log", x)


def tanh(x: Any) -> Tensor:
    return _unary("Tanh", x)


def sigmoid(x: Any) -> Tensor:
    return _unary("Sigmoid", x)


def relu(x: Any) -> Tensor:
    return _unary("Relu", x)


def softmax(x: Any, axis: int = -1) -> Tensor:
    t = _tensor(x)
    return t.trace.op("Softmax", [t], axis=axis)


def identity(x: Any) -> Tensor:
    return _unary("Identity", x)


stop_gradient = identity  # no gradients flow on the server: the value is what matters


def _axes(t: Tensor, axis: Axis) -> list[Tensor]:
    if axis is None:
        return []
    values = [axis] if isinstance(axis, int) else list(axis)
    return [t.trace.const(np.asarray(values, dtype=np.int64), "int64")]


def _reduce(op_type: str, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    t = _tensor(x)
    return t.trace.op(op_type, [t, *_axes(t, axis)], keepdims=int(keepdims))


def reduce_sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _reduce("ReduceSum", x, axis, keepdims)


def reduce_mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _reduce("ReduceMean", x, axis, keepdims)


def reduce_max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _reduce("ReduceMax", x, axis, keepdims)


def reduce_min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _reduce("ReduceMin", x, axis, keepdims)


def l2_loss(x: Any) -> Tensor:
    """TF's ``tf.nn.l2_loss``: ``sum(x ** 2) / 2``."""
    return reduce_sum(square(x)) * 0.5


def reshape(x: Any, shape: Sequence[int]) -> Tensor:
    t = _tensor(x)
    return t.trace.op("Reshape", [t, t.trace.const(np.asarray(list(shape), dtype=np.int64), "int64")])


def transpose(x: Any, perm: Sequence[int]) -> Tensor:
    t = _tensor(x)
    return t.trace.op("Transpose", [t], perm=list(perm))


def expand_dims(x: Any, axis: int) -> Tensor:
    t = _tensor(x)
    return t.trace.op("Unsqueeze", [t, *_axes(t, axis)])


def concat(values: Sequence[Any], axis: int) -> Tensor:
    tensors = [_tensor(v) for v in values]
    return tensors[0].trace.op("Concat", tensors, axis=axis)


def shape(x: Any) -> Tensor:
    """The dynamic shape as an int64 vector (``tf.shape(x)[0]`` is the batch size)."""
    t = _tensor(x)
    return t.trace.op("Shape", [t], dtype="int64")


def cast(x: Any, dtype: Any) -> Tensor:
    t = _tensor(x)
    name = str(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).name)
    if name not in ONNX_TYPES:
        raise TypeError(f"cannot cast to {name}; types: {', '.join(ONNX_TYPES)}")
    return t.trace.op("Cast", [t], dtype=name, to=ONNX_TYPES[name])


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """Elementwise ``x`` where ``condition`` else ``y``; with the scalar ``training`` flag it is
    TF's ``smart_cond(training, x, y)``."""
    cond = _tensor(condition)
    a, b = _pair(x, y)
    return cond.trace.op("Where", [cond, a, b], dtype=a.dtype)


def cond(pred: Any, true_fn: Any, false_fn: Any) -> Tensor:
    """TF's ``cond`` for a layer's graph: both branches are recorded and ``pred`` (the scalar
    ``training`` flag, say) selects one result per apply, elementwise as ``where``."""
    return where(pred, true_fn(), false_fn())


class _NN:
    """``tf.nn``'s names used in layer code."""

    relu = staticmethod(relu)
    sigmoid = staticmethod(sigmoid)
    tanh = staticmethod(tanh)
    softmax = staticmethod(softmax)
    l2_loss = staticmethod(l2_loss)


nn = _NN()


class UpdateOp:
    """A new value for a non-trainable variable, to pass to ``Layer.add_update``."""

    def __init__(self, variable: Tensor, value: Any, momentum: float | None = None) -> None:
        self.variable = _tensor(variable)
        self.value = as_tensor(value, self.variable)
        self.momentum = momentum


def assign(variable: Any, value: Any) -> UpdateOp:
    """``tf.assign``: running the update sets the variable to ``value`` (computed at apply)."""
    return UpdateOp(variable, value)


def moving_average_update(variable: Any, value: Any, momentum: float) -> UpdateOp:
    """Keras' ``moving_average_update``: ``variable * momentum + value * (1 - momentum)``,
    evaluated against the variable's value when the update runs (as BatchNormalization's)."""
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    return UpdateOp(variable, value, float(momentum))
