"""Graph surgery on an uploaded ONNX model, for custom layers.

Three jobs: find what a value depends on (so unconditional losses can be proven to read
variables only), cut out the sub-model that computes chosen outputs, and put the uploaded
graph in the frame every compiled layer has (inputs ``x``, ``x1``…, variables by short
name, outputs ``y``…). The frame renames every uploaded value with a prefix, so no uploaded
name can collide with a frame name, and wires the two together with Identity nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["Frame", "data_inputs", "depends_on", "extract_outputs", "frame_model", "subgraphs"]

PREFIX = "u/"  # frame names never contain "/", so prefixed uploaded names cannot collide with them


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs held in a node's attributes (If branches, Loop and Scan bodies)."""
    out: list[onnx.GraphProto] = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            out.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            out.extend(attr.graphs)
    return out


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from its enclosing scope."""
    local = {vi.name for vi in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in subgraphs(node):
            used |= _outer_names(sub)
        local.update(node.output)
    return used - local


def _node_reads(node: onnx.NodeProto) -> set[str]:
    reads = {n for n in node.input if n}
    for sub in subgraphs(node):
        reads |= _outer_names(sub)
    return reads


def depends_on(graph: onnx.GraphProto, outputs: Iterable[str]) -> set[str]:
    """Every value name the given outputs are computed from (themselves included)."""
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is not None:
            stack.extend(_node_reads(node))
    return seen


def data_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (an initializer listed as input is a constant)."""
    constants = {t.name for t in graph.initializer}
    return [vi for vi in graph.input if vi.name not in constants]


def _new_model(model: onnx.ModelProto, graph: onnx.GraphProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    out.producer_name = "layerserve"
    out.graph.CopyFrom(graph)
    return out


def extract_outputs(model: onnx.ModelProto, outputs: list[str], inputs: list[str]) -> onnx.ModelProto:
    """The sub-model computing ``outputs`` from the graph inputs named ``inputs`` (kept in order)."""
    src = model.graph
    needed = depends_on(src, outputs)
    graph = onnx.GraphProto(name=f"{src.name}_losses")
    graph.node.extend(n for n in src.node if any(o in needed for o in n.output))
    graph.initializer.extend(t for t in src.initializer if t.name in needed)
    graph.sparse_initializer.extend(s for s in src.sparse_initializer if s.values.name in needed)
    by_name = {vi.name: vi for vi in src.input}
    graph.input.extend(by_name[n] for n in inputs)
    out_info = {vi.name: vi for vi in src.output}
    graph.output.extend(out_info[n] for n in outputs)
    return _new_model(model, graph)


def _rename_all(graph: onnx.GraphProto, rename: Callable[[str], str]) -> None:
    """Rename every value of ``graph`` and of its subgraphs in place (empty names stay empty)."""
    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.name = rename(vi.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = rename(sparse.values.name)
        if sparse.indices.name:
            sparse.indices.name = rename(sparse.indices.name)
    for node in graph.node:
        names_in, names_out = [rename(n) if n else n for n in node.input], [rename(n) for n in node.output]
        del node.input[:], node.output[:]
        node.input.extend(names_in)
        node.output.extend(names_out)
        for sub in subgraphs(node):
            _rename_all(sub, rename)


@dataclass
class Frame:
    """How the uploaded graph's values map to the compiled layer's frame."""

    inputs: list[tuple[str, str, tuple[int | None, ...]]]  # (frame name, uploaded name, actual shape) per input
    variables: list[tuple[str, list[int]]]  # (name, resolved shape); graph input names equal variable names
    outputs: list[tuple[str, str]]  # (frame name, uploaded name) per kept output
    training: tuple[str, bool] | None = None  # (uploaded input name, value baked in)


def _renamed_info(info: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(info)
    out.name = name
    return out


def frame_model(model: onnx.ModelProto, frame: Frame) -> onnx.ModelProto:
    """The uploaded model inside the frame; the training input becomes a constant."""
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    originals = {vi.name: vi for vi in (*graph.input, *graph.output)}
    _rename_all(graph, lambda n: PREFIX + n)
    head: list[onnx.NodeProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    for frame_name, name, shape in frame.inputs:
        # The actual rank and dims (batch left dynamic): an uploaded graph may declare any rank.
        elem_type = originals[name].type.tensor_type.elem_type
        inputs.append(helper.make_tensor_value_info(frame_name, elem_type, _frame_dims(frame_name, shape)))
        head.append(helper.make_node("Identity", [frame_name], [PREFIX + name], name=f"frame_in_{frame_name}"))
    for name, var_shape in frame.variables:
        elem_type = originals[name].type.tensor_type.elem_type
        inputs.append(helper.make_tensor_value_info(name, elem_type, var_shape))
        head.append(helper.make_node("Identity", [name], [PREFIX + name], name=f"frame_var_{name}"))
    if frame.training is not None:
        name, value = frame.training
        head.append(helper.make_node("Constant", [], [PREFIX + name], name="frame_training",
                                     value=numpy_helper.from_array(np.array(value, dtype=np.bool_))))
    dropped = {PREFIX + name for _, name, _ in frame.inputs} | {PREFIX + name for name, _ in frame.variables}
    if frame.training is not None:
        dropped.add(PREFIX + frame.training[0])
    # What stays are initializers listed as inputs; copies, since the originals are cleared below.
    kept_inputs = [_renamed_info(vi, vi.name) for vi in graph.input if vi.name not in dropped]
    tail = [helper.make_node("Identity", [PREFIX + name], [frame_name], name=f"frame_out_{frame_name}")
            for frame_name, name in frame.outputs]
    nodes = [*head, *graph.node, *tail]
    del graph.node[:], graph.input[:], graph.output[:]
    graph.node.extend(nodes)
    graph.input.extend([*inputs, *kept_inputs])
    graph.output.extend(_type_only(originals[name], frame_name) for frame_name, name in frame.outputs)
    del graph.value_info[:]  # declared for the uploaded shapes; inference redoes them for the actual ones
    return onnx.shape_inference.infer_shapes(_new_model(model, graph))


def _frame_dims(name: str, shape: tuple[int | None, ...]) -> list[int | str]:
    if not shape:
        return []
    rest = [f"{name}_d{k}" if d is None else d for k, d in enumerate(shape[1:], 1)]
    return [f"{name}_batch", *rest]


def _type_only(info: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    """An output's element type without its declared shape (the actual input ranks may differ)."""
    out = _renamed_info(info, name)
    out.type.tensor_type.ClearField("shape")
    return out
