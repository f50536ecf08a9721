"""Graphs to JSON-able dicts and back; arrays as base64 of their raw bytes (exact)."""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

import numpy as np

from service.core.graph import Graph
from service.core.layer import ConditionalLoss, Layer, PendingUpdate, Variable
from service.core.naming import GraphNames
from service.core.regularizers import parse_regularizer
from service.layers import kind_for

__all__ = ["array_from_json", "array_to_json", "decode_records", "graph_from_json", "graph_to_json",
           "layer_from_json", "layer_to_json", "records_from_json", "records_to_json"]


def array_to_json(array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array, order="C")
    return {"dtype": array.dtype.name, "shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode()}


def array_from_json(obj: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(obj["b64"])
    return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()


def layer_to_json(layer: Layer) -> dict[str, Any]:
    return {
        "id": layer.id, "class": layer.class_name, "config": layer.kind.config, "name": layer.name,
        "base_name": layer.base_name, "trainable": layer.trainable, "dtype": layer.dtype,
        "scope": layer.scope, "fixed_scope": layer.fixed_scope, "reuse": layer.reuse,
        "built": layer.built, "build_shape": None if layer.build_shape is None else list(layer.build_shape),
        "variables": layer.variables, "batching": layer.batching,
        "weight_losses": [[name, reg.get_config()] for name, reg in layer.weight_losses],
        **({"aliases": layer.aliases} if layer.aliases else {}),
    }


def layer_from_json(data: dict[str, Any]) -> Layer:
    kind = kind_for(data["class"])(data["config"])
    losses = []
    for name, reg in data["weight_losses"]:
        parsed = parse_regularizer(reg, name)
        assert parsed is not None
        losses.append((name, parsed))
    build_shape = data["build_shape"]
    return Layer(
        id=data["id"], kind=kind, name=data["name"], base_name=data["base_name"], trainable=data["trainable"],
        dtype=data["dtype"], scope=data["scope"], fixed_scope=data["fixed_scope"], reuse=data["reuse"],
        built=data["built"], build_shape=None if build_shape is None else tuple(build_shape),
        variables=list(data["variables"]), weight_losses=losses, batching=dict(data.get("batching", {})),
        aliases=dict(data.get("aliases", {})))


def records_to_json(layer: Layer) -> dict[str, Any]:
    return {
        "losses": [{"ref": c.ref, "value": array_to_json(c.value), "others": list(c.others)} for c in layer.losses],
        "updates": [{"ref": u.ref, "variable": u.variable, "value": array_to_json(u.value),
                     "stat": None if u.stat is None else array_to_json(u.stat), "decay": u.decay,
                     "others": list(u.others)}
                    for u in layer.updates],
    }


def decode_records(data: dict[str, Any]) -> tuple[tuple[ConditionalLoss, ...], tuple[PendingUpdate, ...]]:
    """A layer's records as immutable tuples, so that several copies of a graph can share them."""
    losses = tuple(ConditionalLoss(c["ref"], array_from_json(c["value"]), tuple(c.get("others", ())))
                   for c in data["losses"])
    updates = tuple(PendingUpdate(u["ref"], u["variable"], array_from_json(u["value"]),
                                  None if u["stat"] is None else array_from_json(u["stat"]), u["decay"],
                                  tuple(u.get("others", ())))
                    for u in data["updates"])
    return losses, updates


def records_from_json(layer: Layer, data: dict[str, Any]) -> None:
    losses, updates = decode_records(data)
    layer.losses, layer.updates = deque(losses), deque(updates)


def graph_to_json(graph: Graph) -> dict[str, Any]:
    return {
        "name": graph.name, "next_id": graph.next_id, "names": graph.names.to_json(),
        "revision": graph.revision, "versions": dict(graph.versions),
        "layers": [layer_to_json(layer) for layer in graph.layers.values()],
        "variables": [v.to_json() for v in graph.variables.values()],
    }


def graph_from_json(data: dict[str, Any]) -> Graph:
    graph = Graph(name=data["name"], names=GraphNames.from_json(data["names"]), next_id=data["next_id"],
                  revision=data.get("revision", 0), versions=dict(data.get("versions", {})))
    for layer_data in data["layers"]:
        layer = layer_from_json(layer_data)
        layer.graph = graph.name
        graph.layers[layer.id] = layer
    for v in data["variables"]:
        graph.variables[v["name"]] = Variable.from_json(v)
    return graph
