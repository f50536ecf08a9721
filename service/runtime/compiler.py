"""Turns a layer kind and an input signature into a checked ONNX model."""

from __future__ import annotations

import onnx

from layerserve.server.layers.base import LayerKind, Signature
from layerserve.server.layers.kit.onnx_graph import GraphBuilder

__all__ = ["OUTPUT", "compile_layer", "input_name"]

INPUT = "x"
OUTPUT = "y"


def input_name(index: int) -> str:
    """Graph input of the layer's input ``index``: ``x``, then ``x1``, ``x2``…"""
    return INPUT if index == 0 else f"{INPUT}{index}"


def compile_layer(kind: LayerKind, sig: Signature, name: str = "layer") -> tuple[onnx.ModelProto, list[str]]:
    """The model and its output names: ``y`` first, then the kind's extras in order."""
    whole = kind.compile_model(sig)
    if whole is not None:
        whole[0].graph.name = name
        return whole
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
