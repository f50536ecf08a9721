"""A small builder over onnx.helper: layer modules describe their math with it.

Every layer graph has the same frame: the data input ``x`` (batch dimension dynamic),
then the layer's variables as graph inputs (in the layer's weights order, named by their
short names), optional extra inputs (e.g. Dropout's noise), and the output ``y`` followed by
optional extra outputs (e.g. BatchNormalization's batch statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["OPSET", "GraphBuilder", "onnx_dtype"]

OPSET = 18
_ONNX_DTYPES = {
    "float16": TensorProto.FLOAT16,
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
}


def onnx_dtype(name: str) -> int:
    return _ONNX_DTYPES[name]


class GraphBuilder:
    """Collects nodes, inputs, outputs and constants; names every intermediate uniquely."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def add_input(self, name: str, dtype: str, shape: list[Any]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), shape))
        return name

    def add_output(self, value: str, name: str, dtype: str, shape: list[Any] | None = None) -> None:
        if value != name:
            self.op("Identity", [value], out=name)
        self.outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), shape))

    def const(self, value: Any, dtype: str, hint: str = "c") -> str:
        name = self.fresh(hint)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, values: list[int] | tuple[int, ...], hint: str = "i") -> str:
        return self.const(np.asarray(values, dtype=np.int64), "int64", hint)

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def op_multi(self, op_type: str, inputs: list[str], n_out: int, **attrs: Any) -> list[str]:
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="layerserve")
        model.ir_version = 8
        return model
