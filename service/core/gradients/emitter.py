"""Appends backward nodes and constants to the forward graph under fresh ``gradients/`` names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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

    def reduce_sum(self, x: str, axes: Sequence[int], *, keepdims: bool, shape: Sequence[int] | None = None,
                   elem: int = 0) -> str:
        """``ReduceSum``; given ``x``'s static ``shape`` and a float ``elem`` type, as products
        with ones where the kept axes are contiguous (see ``_summed_by_products``)."""
        if not axes:
            return x
        if shape is not None and elem in (TensorProto.FLOAT, TensorProto.DOUBLE):
            summed = self._summed_by_products(x, sorted({a % len(shape) for a in axes}), list(shape), elem,
                                              keepdims=keepdims)
            if summed is not None:
                return summed
        return self.op("ReduceSum", [x, self.ints(axes)], keepdims=int(keepdims))

    def _summed_by_products(self, x: str, axes: list[int], shape: list[int], elem: int, *,
                            keepdims: bool) -> str | None:
        """The sum over the axes before and after a contiguous run of kept ones, as MatMuls with
        ones: ONNX Runtime's ReduceSum over leading axes (a bias's or a channel's gradient) is
        about 10x slower than its MatMul. None where the kept axes are not contiguous."""
        kept = [a for a in range(len(shape)) if a not in axes]
        if kept and kept != list(range(kept[0], kept[-1] + 1)):
            return None
        first, stop = (kept[0], kept[-1] + 1) if kept else (len(shape), len(shape))
        lead, middle, trail = math.prod(shape[:first]), math.prod(shape[first:stop]), math.prod(shape[stop:])
        if lead * middle * trail == 0:
            return None
        y = x
        if trail > 1:
            y = self.op("MatMul", [self.reshape(y, [lead * middle, trail]), self.filled([trail, 1], 1.0, elem)])
        if lead > 1:
            y = self.op("MatMul", [self.filled([1, lead], 1.0, elem), self.reshape(y, [lead, middle])])
        out = [1 if a in axes else d for a, d in enumerate(shape)] if keepdims else [shape[a] for a in kept]
        return self.reshape(y, out)

    def unbroadcast(self, g: str, g_shape: Sequence[int], target: Sequence[int], elem: int = 0) -> str:
        """Sum ``g`` (of the broadcast shape) down to ``target`` (numpy broadcasting rules)."""
        g_shape, target = tuple(g_shape), tuple(target)
        if g_shape == target:
            return g
        lead = len(g_shape) - len(target)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(target) if d == 1 and g_shape[lead + i] != 1]
        reduced = self.reduce_sum(g, axes, keepdims=True, shape=g_shape, elem=elem)
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
