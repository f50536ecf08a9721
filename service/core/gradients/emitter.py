"""Appends backward nodes and constants to the forward graph under fresh ``gradients/`` names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from layerserve.server.core.gradients.info import GraphInfo, np_dtype

__all__ = ["Emitter"]


class Emitter:
    def __init__(self, graph: onnx.GraphProto, info: GraphInfo) -> None:
        self.graph = graph
        self.info = info
        self._taken = _all_names(graph)
        self._count = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"gradients/{hint}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    # ---- nodes -----------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        return self.op_multi(op_type, inputs, 1, **attrs)[0]

    def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
        outs = [self.fresh(op_type) for _ in range(n_out)]
        self.graph.node.append(helper.make_node(op_type, list(inputs), outs, name=outs[0], **attrs))
        return outs

    # ---- constants -------------------------------------------------------------------------
    def const(self, value: np.ndarray) -> str:
        array = np.ascontiguousarray(value)
        key = (array.dtype.str, array.tobytes(), array.shape)
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = self.fresh("const")
            self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def scalar(self, value: float, elem_type: int) -> str:
        return self.const(np.asarray(value, dtype=np_dtype(elem_type)))

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    def filled(self, shape: Sequence[int], value: float, elem_type: int) -> str:
        fill = helper.make_tensor("value", elem_type, [1], np.asarray([value], dtype=np_dtype(elem_type)).tobytes(),
                                  raw=True)
        return self.op("ConstantOfShape", [self.ints(shape)], value=fill)

    def zeros(self, shape: Sequence[int], elem_type: int) -> str:
        return self.filled(shape, 0.0, elem_type)

    # ---- arithmetic helpers ------------------------------------------------------------------
    def add_all(self, terms: list[str]) -> str:
        return terms[0] if len(terms) == 1 else self.op("Sum", terms)

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.ints(shape)])

    def reduce_sum(self, x: str, axes: Sequence[int], *, keepdims: bool) -> str:
        if not axes:
            return x
        return self.op("ReduceSum", [x, self.ints(axes)], keepdims=int(keepdims))

    def unbroadcast(self, g: str, g_shape: Sequence[int], target: Sequence[int]) -> str:
        """Sum ``g`` (of the broadcast shape) down to ``target`` (numpy broadcasting rules)."""
        g_shape, target = tuple(g_shape), tuple(target)
        if g_shape == target:
            return g
        lead = len(g_shape) - len(target)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(target) if d == 1 and g_shape[lead + i] != 1]
        reduced = self.reduce_sum(g, axes, keepdims=True)
        return self.reshape(reduced, target)

    def cast(self, x: str, elem_type: int, from_type: int) -> str:
        return x if elem_type == from_type else self.op("Cast", [x], to=elem_type)


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in [*graph.input, *graph.output, *graph.value_info]}
    names.update(t.name for t in graph.initializer)
    for node in graph.node:
        names.update(node.output)
        names.add(node.name)
    return names
