"""A run's program: the graph pruned to what the fetches and targets need, as one ONNX model
(standard ops plus ``ai.layerserve`` nodes the server expands), and its content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from layerserve._tracing import OPSET
from layerserve.compat.v1.graph import DOMAIN, Graph, Operation, Tensor

__all__ = ["Program", "build_program", "prune"]


@dataclass
class Program:
    model: bytes
    digest: str
    feeds: list[str]  # graph inputs, in order
    fetches: list[str]  # graph outputs (tensor names)


def prune(graph: Graph, fetches: list[Tensor], targets: list[Operation], fed: set[str]) -> list[Operation]:
    """The operations the fetches and targets need (control dependencies included; a fed tensor
    cuts the graph), in creation order (a topological order)."""
    seen: set[int] = set()
    stack: list[Operation] = [t.op for t in fetches if t.name not in fed and t.op is not None]
    stack += targets
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        stack.extend(op.control_inputs)
        stack.extend(t.op for t in op.inputs if t.name not in fed and t.op is not None)
    return [op for op in graph.operations.values() if id(op) in seen]


def _needed_constants(graph: Graph, nodes: list[Any], fed: set[str], fetched: set[str]) -> dict[str, np.ndarray]:
    names = {i for node in nodes for i in node.inputs} | {o for node in nodes for o in node.outputs} | fetched
    return {n: v for n, v in graph.constants.items() if n in names and n not in fed}


def build_program(graph: Graph, ops: list[Operation], feeds: list[Tensor], fetches: list[Tensor]) -> Program:
    from onnx import helper, numpy_helper

    from layerserve.compat.v1.shapes import onnx_value_info

    fed = {t.name for t in feeds}
    nodes = [n for op in ops for n in op.nodes if not (set(n.outputs) & fed)]
    onnx_nodes = []
    for n in nodes:
        attrs = dict(n.attrs)
        domain = attrs.pop("__domain__", "")
        onnx_nodes.append(helper.make_node(n.op_type, n.inputs, n.outputs, domain=domain or None, **attrs))
    inputs = [onnx_value_info(t.name, t.dtype, t.shape) for t in feeds]
    outputs = []
    for name in dict.fromkeys(t.name for t in fetches):
        outputs.append(helper.make_empty_tensor_value_info(name))
    consts = _needed_constants(graph, nodes, fed, {t.name for t in fetches})
    # A fetched constant (tf.constant) has no node: it is an initializer and an output.
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()]
    g = helper.make_graph(onnx_nodes, "program", inputs, outputs, inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
                              producer_name="layerserve.compat.v1")
    model.ir_version = 8
    data = model.SerializeToString(deterministic=True)
    return Program(data, hashlib.sha256(data).hexdigest(), [t.name for t in feeds], [o.name for o in outputs])
