"""What the backward rules need to know about the forward graph: each tensor's static shape and
element type (from ONNX shape inference; every graph input is concrete when gradients are
formed) and the value of every tensor that is a constant or folds to one (axes, pads, slice
bounds, gather indices, shapes computed from static shapes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from layerserve.server.core.gradients.errors import GradientError

__all__ = ["FLOAT_TYPES", "OPSET", "GraphInfo", "np_dtype"]

OPSET = 18
FLOAT_TYPES = frozenset({TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE})
# Ops whose outputs are folded to constants when every input is one (small integer arithmetic
# on shapes and indices, as recorded graphs compute them).
_FOLDABLE = frozenset({
    "Identity", "Cast", "Concat", "Gather", "Slice", "Squeeze", "Unsqueeze", "Reshape", "Add", "Sub", "Mul",
    "Div", "Neg", "Range", "ReduceProd", "ReduceSum", "ConstantOfShape", "Expand", "Equal", "Where", "Max", "Min",
    "Abs", "Flatten", "Transpose", "Mod",
})
_FOLD_LIMIT = 1 << 16  # elements: constants bigger than this are read, never computed


def np_dtype(elem_type: int) -> np.dtype[Any]:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


class GraphInfo:
    """Static facts about ``graph``'s tensors, computed once before rules run."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for out in node.output:
                if out:
                    self.producer[out] = node
        self.types: dict[str, tuple[int, tuple[int, ...] | None]] = {}
        self._constants: dict[str, np.ndarray | None] = {}
        for init in graph.initializer:
            self.types[init.name] = (init.data_type, tuple(int(d) for d in init.dims))
        self._initializers = {init.name: init for init in graph.initializer}
        self._infer()

    def _infer(self) -> None:
        domains = {n.domain for n in self.graph.node if n.domain not in ("", "ai.onnx")}
        opsets = [helper.make_opsetid("", OPSET), *(helper.make_opsetid(d, 1) for d in sorted(domains))]
        model = helper.make_model(self.graph, opset_imports=opsets)
        model.ir_version = 8
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
        except Exception as exc:  # onnx raises several types; all mean the graph is inconsistent
            raise GradientError(f"shape inference failed before forming gradients: {exc}") from None
        for info in [*inferred.input, *inferred.value_info, *inferred.output]:
            tensor = info.type.tensor_type
            if not info.type.HasField("tensor_type"):
                continue
            dims: tuple[int, ...] | None = None
            if tensor.HasField("shape"):
                values = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
                dims = None if any(v < 0 for v in values) else tuple(values)
            self.types.setdefault(info.name, (tensor.elem_type, dims))

    # ---- types and shapes ----------------------------------------------------------------
    def elem_type(self, name: str) -> int:
        return self.types.get(name, (0, None))[0]

    def is_float(self, name: str) -> bool:
        return self.elem_type(name) in FLOAT_TYPES

    def shape(self, name: str) -> tuple[int, ...]:
        dims = self.types.get(name, (0, None))[1]
        if dims is None:
            producer = self.producer.get(name)
            where = f" (output of {producer.op_type} {producer.name!r})" if producer is not None else ""
            raise GradientError(f"tensor {name!r}{where} has no static shape; gradients need every shape known",
                                tensor=name)
        return dims

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    # ---- constants -------------------------------------------------------------------------
    def constant(self, name: str) -> np.ndarray | None:
        """The tensor's value when it is known without running the graph, else None."""
        if not name:
            return None
        if name in self._constants:
            return self._constants[name]
        value = self._compute(name)
        self._constants[name] = value
        return value

    def require_constant(self, name: str, what: str, node: onnx.NodeProto) -> np.ndarray:
        value = self.constant(name)
        if value is None:
            raise GradientError(f"the gradient of {node.op_type} {node.name!r} needs its {what} ({name!r}) to be a "
                                "constant", op_type=node.op_type, node=node.name)
        return value

    def _compute(self, name: str) -> np.ndarray | None:
        if name in self._initializers:
            return numpy_helper.to_array(self._initializers[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            return _constant_node_value(node)
        if node.op_type == "Shape":
            return self._shape_value(node)
        if node.op_type == "Size":
            dims = self.types.get(node.input[0], (0, None))[1]
            return None if dims is None else np.asarray(int(np.prod(dims)), dtype=np.int64)
        if node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx"):
            return None
        return self._fold(node, name)

    def _shape_value(self, node: onnx.NodeProto) -> np.ndarray | None:
        dims = self.types.get(node.input[0], (0, None))[1]
        if dims is None:
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return np.asarray(dims[slice(start, end)], dtype=np.int64)

    def _fold(self, node: onnx.NodeProto, name: str) -> np.ndarray | None:
        inputs = []
        for i in node.input:
            value = self.constant(i) if i else None
            if i and (value is None or value.size > _FOLD_LIMIT):
                return None
            inputs.append(value)
        from onnx.reference import ReferenceEvaluator  # only when a fold is needed

        feeds = {f"i{k}": v for k, v in enumerate(inputs) if v is not None}
        renamed = helper.make_node(node.op_type, [f"i{k}" if i else "" for k, i in enumerate(node.input)],
                                   [f"o{k}" if o else "" for k, o in enumerate(node.output)])
        renamed.attribute.extend(node.attribute)
        graph = helper.make_graph([renamed], "fold", [helper.make_tensor_value_info(
            k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
            [onnx.ValueInfoProto(name=f"o{k}") for k, o in enumerate(node.output) if o])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        try:
            results = list(ReferenceEvaluator(model).run(None, feeds))
        except Exception:  # not foldable after all: the rule asks for a constant and reports it
            return None
        index = [o for o in node.output if o].index(name)
        return np.asarray(results[index])


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.asarray(helper.get_attribute_value(attr),
                              dtype=np.float32 if attr.name == "value_float" else np.int64)
        if attr.name in ("value_floats", "value_ints"):
            return np.asarray(helper.get_attribute_value(attr),
                              dtype=np.float32 if attr.name == "value_floats" else np.int64)
    return None
