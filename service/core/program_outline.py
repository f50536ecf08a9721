"""A program's outline for drawing: its feeds, layer calls, variable reads and writes, and ops,
with the edges between them, read from the program's ONNX model (what the client registered).

Nodes of the ``ai.layerserve`` domain carry the layer or variable they address as a string
attribute (``layer``, ``variable``); the outline names them so that the drawing reads like
TensorBoard's graph tab. Edges follow tensor names from the node that produces them (or the
graph input that feeds them) to each node that consumes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

__all__ = ["MAX_OUTLINE_NODES", "outline"]

MAX_OUTLINE_NODES = 2000  # more than a page can draw legibly; the outline says it was cut
_DOMAIN = "ai.layerserve"
_VARIABLE_OPS = {"ReadVariable": "read", "Assign": "assign", "LayerUpdate": "update"}


def _attr(node: onnx.NodeProto, name: str) -> str | None:
    for attribute in node.attribute:
        if attribute.name == name and attribute.type == onnx.AttributeProto.STRING:
            return str(attribute.s.decode("utf-8", "replace"))
    return None


def _op_name(tensor: str) -> str:
    """TF's op name of a tensor name (``fc/Relu:0`` -> ``fc/Relu``)."""
    head, sep, tail = tensor.rpartition(":")
    return head if sep and tail.isdigit() else tensor


def _unique(name: str, taken: set[str]) -> str:
    found, k = name, 1
    while found in taken:
        found, k = f"{name}_{k}", k + 1
    taken.add(found)
    return found


def _node_json(node: onnx.NodeProto, name: str, layer_label: Callable[[str], tuple[str, str]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "op": node.op_type, "kind": "op"}
    if node.domain == _DOMAIN and node.op_type == "LayerCall":
        layer = _attr(node, "layer") or ""
        label, class_name = layer_label(layer)
        entry.update(kind="layer", layer=layer, label=label, **{"class": class_name})
    elif node.domain == _DOMAIN and node.op_type in _VARIABLE_OPS:
        entry.update(kind="variable", variable=_attr(node, "variable") or "", access=_VARIABLE_OPS[node.op_type])
    return entry


def outline(model: onnx.ModelProto, layer_label: Callable[[str], tuple[str, str]]) -> dict[str, Any]:
    """``feeds``, ``fetches`` and ``nodes`` (name: unique, TF's op name where known; op, kind: placeholder / layer / variable / op,
    ``inputs``: names of the nodes it reads from). ``layer_label`` maps a layer reference to its
    (name, class) for display."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    feeds = [i.name for i in graph.input if i.name not in constants]
    taken: set[str] = set()
    producer = {feed: _unique(_op_name(feed), taken) for feed in feeds}
    nodes: list[dict[str, Any]] = [{"name": producer[feed], "op": "Placeholder", "kind": "placeholder", "inputs": []}
                                   for feed in feeds]
    for index, node in enumerate(graph.node):
        # Nodes are named after the op that computes them: their own name, else their first output's.
        base = node.name or (_op_name(node.output[0]) if node.output else f"{node.op_type}_{index}")
        entry = _node_json(node, _unique(base, taken), layer_label)
        entry["inputs"] = sorted({producer[i] for i in node.input if i in producer})
        for output in node.output:
            producer[output] = entry["name"]
        nodes.append(entry)
    truncated = len(nodes) > MAX_OUTLINE_NODES
    return {"feeds": feeds, "fetches": [o.name for o in graph.output], "truncated": truncated,
            "n_nodes": len(nodes), "nodes": nodes[:MAX_OUTLINE_NODES]}
