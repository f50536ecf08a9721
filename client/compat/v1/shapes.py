"""Static shapes and dtypes of new ops, from ONNX's own shape inference on a one-node model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from layerserve._tracing import ONNX_TYPES, OPSET
from layerserve.compat.v1.dtypes import DType

if TYPE_CHECKING:
    from layerserve.compat.v1.graph import Graph, TensorShape

__all__ = ["infer", "onnx_value_info"]

_BY_NUMBER = {v: k for k, v in ONNX_TYPES.items()} | {8: "string"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("layerserve.compat.v1 records ONNX graphs and needs the onnx package: "
                          "pip install 'layerserve[custom]'") from None
    return onnx


def onnx_value_info(name: str, dtype: str, shape: TensorShape) -> Any:
    onnx = _onnx()
    dims = None if shape.dims is None else [d if d is not None else f"{name}_d{k}" for k, d in enumerate(shape.dims)]
    number = 8 if dtype == "string" else ONNX_TYPES[str(dtype)]
    return onnx.helper.make_tensor_value_info(name, number, dims)


def infer(graph: Graph, op_type: str, inputs: list[Any], attrs: dict[str, Any]) -> tuple[DType, TensorShape]:
    """The dtype and shape of the one output of ``op_type`` on ``inputs`` (ValueError as TF's
    shape functions raise when the inputs do not fit)."""
    from layerserve.compat.v1.graph import TensorShape

    onnx = _onnx()
    helper = onnx.helper
    names, infos, inits = [], [], []
    for k, t in enumerate(inputs):
        if t is None:
            names.append("")
            continue
        name = f"in{k}"
        names.append(name)
        value = graph.const_value(t.name)
        if value is not None and value.size <= 4096:
            inits.append(onnx.numpy_helper.from_array(np.asarray(value), name))
        infos.append(onnx_value_info(name, t.dtype, t.shape))
    node = helper.make_node(op_type, names, ["out"], **attrs)
    out = onnx.ValueInfoProto(name="out")
    model = helper.make_model(helper.make_graph([node], "op", infos, [out], inits),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises several types; all mean the inputs do not fit the op
        raise ValueError(f"{op_type}: the inputs' shapes or dtypes do not fit: {exc}".split("\n")[0]) from None
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        if info.name == "out" and info.type.tensor_type.elem_type:
            tt = info.type.tensor_type
            dtype = DType(_BY_NUMBER.get(tt.elem_type, "float32"))
            if not tt.HasField("shape"):
                return dtype, TensorShape(None)
            return dtype, TensorShape([d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim])
    raise ValueError(f"{op_type}: could not infer the output type")
