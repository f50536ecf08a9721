"""Graphs to JSON-able dicts and back; arrays as base64 of their raw bytes (exact).

A layer kind's ``blob_fields`` (a custom layer's ONNX model) are large and never change: a
layer's JSON names them by content, ``{"sha256": <hex>}``, and the store keeps each blob once
(``layer_blobs``), so that rewriting a definition never rewrites its model.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import ConditionalLoss, Layer, PendingUpdate, Variable
from layerserve.server.core.naming import GraphNames
from layerserve.server.layers import kind_for
from layerserve.server.layers.base import LayerKind
from layerserve.server.layers.kit.regularizers import parse_regularizer

__all__ = ["array_from_json", "array_to_json", "blob_name", "blob_refs", "program_refs", "decode_records", "graph_from_json",
           "graph_to_json", "layer_blobs", "layer_from_json", "layer_to_json", "loss_to_json", "records_from_json",
           "records_to_json", "update_to_json"]

# kind -> {blob field: digest}; kinds never change, so a digest is computed once per kind
_DIGESTS: weakref.WeakKeyDictionary[LayerKind, dict[str, str]] = weakref.WeakKeyDictionary()
_DIGESTS_LOCK = threading.Lock()


def array_to_json(array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array, order="C")
    return {"dtype": array.dtype.name, "shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode()}


def array_from_json(obj: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(obj["b64"])
    return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()


def _digests(kind: LayerKind) -> dict[str, str]:
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(kind)
    if known is None:
        known = {f: hashlib.sha256(base64.b64decode(kind.config[f])).hexdigest()
                 for f in kind.blob_fields if isinstance(kind.config.get(f), str)}
        with _DIGESTS_LOCK:
            _DIGESTS[kind] = known
    return known


def layer_blobs(layer: Layer) -> dict[str, str]:
    """The layer's blobs: digest -> the config's base64 text (stored as the bytes it encodes)."""
    return {digest: layer.kind.config[f] for f, digest in _digests(layer.kind).items()}


def blob_name(digest: str) -> str:
    """The name a store keeps a blob under."""
    return f"{digest}.bin"


def blob_refs(data: dict[str, Any]) -> list[str]:
    """The digests a layer's JSON refers to."""
    config = data["config"]
    return [config[f]["sha256"] for f in kind_for(data["class"]).blob_fields if isinstance(config.get(f), dict)]


def _config_json(kind: LayerKind) -> dict[str, Any]:
    digests = _digests(kind)
    if not digests:
        return kind.config
    return {**kind.config, **{f: {"sha256": d} for f, d in digests.items()}}


def layer_to_json(layer: Layer) -> dict[str, Any]:
    return {
        "id": layer.id, "class": layer.class_name, "config": _config_json(layer.kind), "name": layer.name,
        "base_name": layer.base_name, "trainable": layer.trainable, "dtype": layer.dtype,
        "scope": layer.scope, "fixed_scope": layer.fixed_scope, "reuse": layer.reuse,
        "built": layer.built, "build_shape": None if layer.build_shape is None else list(layer.build_shape),
        "variables": layer.variables, "batching": layer.batching,
        "weight_losses": [[name, reg.get_config()] for name, reg in layer.weight_losses],
        **({"aliases": layer.aliases} if layer.aliases else {}),
    }


def layer_from_json(data: dict[str, Any], blobs: Mapping[str, str] | None = None) -> Layer:
    """``blobs``: digest -> base64 text, for the blobs the JSON refers to (an older layout kept
    them inline)."""
    config, digests = dict(data["config"]), {}
    for f in kind_for(data["class"]).blob_fields:
        if isinstance(config.get(f), dict):
            digests[f] = config[f]["sha256"]
            config[f] = (blobs or {})[digests[f]]
    kind = kind_for(data["class"])(config)
    if digests:
        with _DIGESTS_LOCK:
            _DIGESTS[kind] = digests
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


def loss_to_json(c: ConditionalLoss) -> dict[str, Any]:
    return {"ref": c.ref, "value": array_to_json(c.value), "others": list(c.others)}


def update_to_json(u: PendingUpdate) -> dict[str, Any]:
    return {"ref": u.ref, "variable": u.variable, "value": array_to_json(u.value),
            "stat": None if u.stat is None else array_to_json(u.stat), "decay": u.decay, "others": list(u.others)}


def records_to_json(layer: Layer) -> dict[str, Any]:
    return {"losses": [loss_to_json(c) for c in layer.losses], "updates": [update_to_json(u) for u in layer.updates]}


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
        **({"programs": list(graph.programs)} if graph.programs else {}),
        **({"named_programs": graph.named_programs} if graph.named_programs else {}),
    }


def graph_from_json(data: dict[str, Any], blobs: Mapping[str, str] | None = None) -> Graph:
    graph = Graph(name=data["name"], names=GraphNames.from_json(data["names"]), next_id=data["next_id"],
                  revision=data.get("revision", 0), versions=dict(data.get("versions", {})))
    for layer_data in data["layers"]:
        layer = layer_from_json(layer_data, blobs)
        layer.graph = graph.name
        graph.layers[layer.id] = layer
    for v in data["variables"]:
        graph.variables[v["name"]] = Variable.from_json(v)
    graph.programs = {d: (blobs or {})[d] for d in program_refs(data) if d in (blobs or {})}
    graph.named_programs = {k: dict(v) for k, v in data.get("named_programs", {}).items()}
    return graph


def program_refs(structure: dict[str, Any]) -> list[str]:
    """The digests of the programs a graph's structure names (each program's id is its digest)."""
    return list(structure.get("programs", []))
