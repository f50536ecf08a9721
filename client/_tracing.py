"""Symbolic tensors: what a custom layer's ``build`` and ``call`` compute, recorded as ONNX nodes.

Recording needs numpy only; ``onnx`` (the ``layerserve[custom]`` extra) is imported when the
recorded trace is turned into a model, so ``import layerserve`` works without it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ONNX_TYPES", "OPSET", "SYMBOLIC_BOOL_MESSAGE", "Tensor", "Trace", "as_tensor"]

OPSET = 18
# ONNX TensorProto element types (stable numbers of the ONNX standard).
ONNX_TYPES = {"float32": 1, "int32": 6, "int64": 7, "bool": 9, "float16": 10, "float64": 11}


@dataclass
class Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


class Trace:
    """The nodes, constants and inputs recorded while a layer is defined."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.inputs: list[tuple[str, str, list[int | str]]] = []  # (name, dtype, dims)
        self._ids = itertools.count(1)

    def fresh(self) -> str:
        return f"t/{next(self._ids)}"  # "/" keeps recorded names apart from variable names

    def add_input(self, name: str, dtype: str, dims: list[int | str], *, per_apply: bool) -> Tensor:
        self.inputs.append((name, dtype, dims))
        return Tensor(self, name, dtype, per_apply=per_apply)

    def const(self, value: Any, dtype: str) -> Tensor:
        name = self.fresh()
        self.constants[name] = np.asarray(value, dtype=dtype)
        return Tensor(self, name, dtype, per_apply=False)

    def op(self, op_type: str, inputs: list[Tensor], dtype: str | None = None, **attrs: Any) -> Tensor:
        for t in inputs:
            if t.trace is not self:
                raise ValueError("tensors of two different layer definitions cannot be combined")
        out = self.fresh()
        self.nodes.append(Node(op_type, [t.name for t in inputs], [out], attrs))
        return Tensor(self, out, dtype or inputs[0].dtype, per_apply=any(t.per_apply for t in inputs))

    def to_model(self, outputs: list[tuple[str, Tensor]]) -> bytes:
        """The recorded graph with the given (name, tensor) outputs, shapes inferred, serialized."""
        try:
            import onnx
            from onnx import helper, numpy_helper
        except ImportError:
            raise ImportError("defining a custom layer needs the onnx package: pip install 'layerserve[custom]'") from None
        nodes = [helper.make_node(n.op_type, n.inputs, n.outputs, **n.attrs) for n in self.nodes]
        nodes += [helper.make_node("Identity", [t.name], [name]) for name, t in outputs]
        inputs = [helper.make_tensor_value_info(name, ONNX_TYPES[dtype], dims) for name, dtype, dims in self.inputs]
        graph_outputs = []
        for name, t in outputs:
            info = onnx.ValueInfoProto(name=name)
            info.type.tensor_type.elem_type = ONNX_TYPES[t.dtype]
            graph_outputs.append(info)
        initializers = [numpy_helper.from_array(v, name) for name, v in self.constants.items()]
        graph = helper.make_graph(nodes, "custom_layer", inputs, graph_outputs, initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="layerserve")
        model.ir_version = 8
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as exc:  # onnx raises several types; all mean the traced call is inconsistent
            raise ValueError(f"the layer's call does not form a valid graph: {exc}") from None
        return bytes(model.SerializeToString())


SYMBOLIC_BOOL_MESSAGE = (
    "Using a symbolic `tf.Tensor` as a Python `bool` is not allowed. You can attempt the following resolutions to "
    "the problem: If you are running in Graph mode, use Eager execution mode or decorate this function with "
    "@tf.function. If you are using AutoGraph, you can try decorating this function with @tf.function. If that "
    "does not work, then you may be using an unsupported feature or your source code may not be visible to "
    "AutoGraph. See https://github.com/tensorflow/tensorflow/blob/master/tensorflow/python/autograph/g3doc/"
    "reference/limitations.md#access-to-source-code for more information.")


class Tensor:
    """A value of the layer's graph. Arithmetic operators record ONNX nodes, as TF's do ops."""

    def __init__(self, trace: Trace, name: str, dtype: str, *, per_apply: bool) -> None:
        self.trace, self.name, self.dtype = trace, name, dtype
        # Computed from the layer's inputs (or the training flag): tied to one apply.
        self.per_apply = per_apply

    def __repr__(self) -> str:
        return f"<symbolic Tensor {self.name!r} dtype={self.dtype}>"

    def __bool__(self) -> bool:
        # ``if training:`` would take one branch for every apply: refuse it, with TF's words.
        raise TypeError(SYMBOLIC_BOOL_MESSAGE)

    def _binary(self, op_type: str, other: Any, *, reverse: bool = False) -> Tensor:
        rhs = as_tensor(other, self)
        return self.trace.op(op_type, [rhs, self] if reverse else [self, rhs])

    def __add__(self, other: Any) -> Tensor:
        return self._binary("Add", other)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary("Add", other, reverse=True)

    def __sub__(self, other: Any) -> Tensor:
        return self._binary("Sub", other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary("Sub", other, reverse=True)

    def __mul__(self, other: Any) -> Tensor:
        return self._binary("Mul", other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary("Mul", other, reverse=True)

    def __truediv__(self, other: Any) -> Tensor:
        return self._binary("Div", other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._binary("Div", other, reverse=True)

    def __matmul__(self, other: Any) -> Tensor:
        return self._binary("MatMul", other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._binary("MatMul", other, reverse=True)

    def __pow__(self, other: Any) -> Tensor:
        return self._binary("Pow", other)

    def __neg__(self) -> Tensor:
        return self.trace.op("Neg", [self])

    def __getitem__(self, index: Any) -> Tensor:
        """Integer and slice indexing of the leading axes (``tf.shape(x)[0]``, ``x[:, 1:]``)."""
        items = index if isinstance(index, tuple) else (index,)
        starts, ends, steps, squeeze = [], [], [], []
        for axis, item in enumerate(items):
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                starts.append(int(item))
                ends.append(int(item) + 1 if item != -1 else 2**62)
                steps.append(1)
                squeeze.append(axis)
            elif isinstance(item, slice):
                step = 1 if item.step is None else int(item.step)
                starts.append(int(item.start) if item.start is not None else (0 if step > 0 else -1))
                ends.append(int(item.stop) if item.stop is not None else (2**62 if step > 0 else -(2**62)))
                steps.append(step)
            else:
                raise TypeError(f"symbolic tensors take int and slice indices, got {item!r}")
        consts = [self.trace.const(np.asarray(v, dtype=np.int64), "int64")
                  for v in (starts, ends, list(range(len(items))), steps)]
        out = self.trace.op("Slice", [self, *consts])
        if squeeze:
            out = self.trace.op("Squeeze", [out, self.trace.const(np.asarray(squeeze, np.int64), "int64")])
        return out


def as_tensor(value: Any, like: Tensor) -> Tensor:
    """A tensor of ``like``'s trace: itself, or a constant in ``like``'s dtype."""
    if isinstance(value, Tensor):
        return value
    return like.trace.const(np.asarray(value, dtype=like.dtype), like.dtype)
