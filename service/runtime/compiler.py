"""Turns a layer kind and an input signature into a checked ONNX model."""

from __future__ import annotations

import onnx

from service.core.onnx_graph import GraphBuilder
from service.layers.base import LayerKind, Signature

__all__ = ["OUTPUT", "compile_layer"]

INPUT = "x"
OUTPUT = "y"


def compile_layer(kind: LayerKind, sig: Signature, name: str = "layer") -> tuple[onnx.ModelProto, list[str]]:
    """The model and its output names: ``y`` first, then the kind's extras in order."""
    b = GraphBuilder(name)
    x = b.add_input(INPUT, sig.dtype, sig.graph_input_shape)
    outputs = kind.graph(b, x, sig)
    b.add_output(outputs.y, OUTPUT, outputs.y_dtype or sig.dtype)
    for extra, (value, dtype) in outputs.extras.items():
        b.add_output(value, extra, dtype)
    # Shape inference fills in the outputs' shapes, which the checker requires.
    model = onnx.shape_inference.infer_shapes(b.model(), strict_mode=True)
    onnx.checker.check_model(model)
    return model, [OUTPUT, *outputs.extras]
