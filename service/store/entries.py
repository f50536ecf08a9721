"""A graph as a set of entries, each versioned on its own, and back.

``G`` is the structure (naming counters, next id, layer order, variable table), ``L:<id>`` a
layer's definition, ``V:<name>`` a variable's value and ``R:<id>`` the index of a layer's
losses and pending updates (see ``records``: an inline tail, and the name of a base object).
A store that keeps entries apart (Redis) rewrites only those a commit changes, and a replica
reloads only those another replica changed. Record bases and the blobs definitions refer to
are immutable objects beside the entries, written once.
"""

from __future__ import annotations

import io
import json
from collections import deque
from typing import Any

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Variable
from layerserve.server.core.naming import GraphNames
from layerserve.server.store.codec import layer_blobs, layer_from_json, program_refs
from layerserve.server.store.definitions import STRUCTURE

__all__ = ["assemble", "decode_entry", "graph_blobs", "value_bytes", "value_from_bytes"]


def graph_blobs(graph: Graph) -> dict[str, str]:
    """Every blob the graph's definitions refer to: digest -> base64 text."""
    blobs: dict[str, str] = {}
    for layer in graph.layers.values():
        if layer.kind.blob_fields:
            blobs.update(layer_blobs(layer))
    blobs.update(graph.programs)
    return blobs


def value_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value, order="C"), allow_pickle=False)
    return buffer.getvalue()


def value_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)  # type: ignore[no-any-return]


def assemble(name: str, revision: int, versions: dict[str, int], table: dict[str, Any],
             blobs: dict[str, str]) -> Graph:
    """A new graph from decoded entries: ``G`` and ``L:`` as JSON objects, ``V:`` as arrays and
    ``R:`` as ``StoredRecords``; ``blobs``: digest -> base64 text. Only immutable parts are
    shared with ``table``."""
    structure = table.get(STRUCTURE) or {"next_id": 1, "names": {}, "order": [], "variables": []}
    graph = Graph(name=name, names=GraphNames.from_json(structure["names"]), next_id=structure["next_id"],
                  revision=revision, versions=dict(versions))
    for layer_id in structure["order"]:
        layer = layer_from_json(table[f"L:{layer_id}"], blobs)
        layer.graph = name
        stored = table.get(f"R:{layer_id}")
        if stored is not None:
            losses, updates = stored.live()
            layer.losses, layer.updates = deque(losses), deque(updates)
        graph.layers[layer.id] = layer
    for v in structure["variables"]:
        graph.variables[v["name"]] = Variable.from_json(v)
    graph.set_values({n: table[f"V:{n}"] for n in graph.variables if f"V:{n}" in table})
    graph.programs = {d: blobs[d] for d in program_refs(structure) if d in blobs}
    graph.named_programs = {k: dict(v) for k, v in structure.get("named_programs", {}).items()}
    return graph


def decode_entry(field: str, data: bytes) -> Any:
    """An entry's stored bytes as an array (``V:``) or JSON (the rest; an ``R:`` index is
    completed into ``StoredRecords`` with its base by the store)."""
    if field.startswith("V:"):
        return value_from_bytes(data)
    return json.loads(data)
