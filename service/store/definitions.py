"""A graph's definition texts: the canonical JSON of its structure and of each layer.

Every commit compares them with the last committed ones to find what changed. Encoding every
layer anew on every commit made a commit's cost grow with the graph (and re-encoded the
``constant_initializer`` arrays a config may hold), so each text is kept with the fields it was
encoded from and encoded again only when one of them is no longer the same.
"""

from __future__ import annotations

import functools
import json
import operator
import threading
import weakref
from typing import Any

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer, Variable
from layerserve.server.store.codec import layer_to_json

__all__ = ["STRUCTURE", "DefinitionTexts", "dumps"]

STRUCTURE = "G"


def dumps(obj: Any) -> str:
    """Canonical JSON: the same state always gives the same text, so texts can be compared."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=1 << 16)
def _variable_text(variable: Variable) -> str:
    return dumps(variable.to_json())


def structure_text(graph: Graph) -> str:
    """The structure's canonical JSON, spliced from parts so that each variable (immutable) is
    encoded once, not on every structural commit."""
    parts = {"names": dumps(graph.names.to_json()), "next_id": str(graph.next_id), "order": dumps(list(graph.layers)),
             "variables": "[" + ",".join(map(_variable_text, graph.variables.values())) + "]"}
    if graph.programs:
        parts["programs"] = dumps(list(graph.programs))
    if graph.named_programs:
        parts["named_programs"] = dumps(graph.named_programs)
    return "{" + ",".join(f'"{key}":{parts[key]}' for key in sorted(parts)) + "}"


_SCALARS = operator.attrgetter("kind", "id", "name", "base_name", "trainable", "dtype", "scope", "fixed_scope",
                                "reuse", "built", "build_shape")


def _layer_fields(layer: Layer) -> tuple[Any, ...]:
    """Everything ``layer_to_json`` reads. The kind (its config) and the regularizers are
    immutable and compare by identity; the containers are copied."""
    return (_SCALARS(layer), tuple(layer.variables), tuple(layer.weight_losses),
            dumps(layer.batching) if layer.batching else "", tuple(layer.aliases.items()) if layer.aliases else ())


def _structure_fields(graph: Graph) -> tuple[Any, ...]:
    """Everything ``structure_text`` reads (variables are immutable: identity shortcuts the
    comparison)."""
    return (graph.next_id, dict(graph.names.layer_counts), dict(graph.names.scope_counts), tuple(graph.layers),
            tuple(graph.variables.values()), tuple(graph.programs),
            dumps(graph.named_programs) if graph.named_programs else "")


class DefinitionTexts:
    """The texts of each graph, re-encoded for what changed since the last call only."""

    def __init__(self) -> None:
        self._layers: dict[int, tuple[weakref.ref[Layer], tuple[Any, ...], str]] = {}
        self._structures: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._lock = threading.Lock()

    def of(self, graph: Graph) -> dict[str, str]:
        """``{"G": structure, "L:<id>": layer, ...}``."""
        fields = _structure_fields(graph)
        with self._lock:
            known = self._structures.get(graph.name)
        structure = known[1] if known is not None and known[0] == fields else structure_text(graph)
        with self._lock:
            self._structures[graph.name] = (fields, structure)
        texts = {STRUCTURE: structure}
        for layer in graph.layers.values():  # this loop is the part of a commit that grows with the graph
            texts[f"L:{layer.id}"] = self.layer(layer)
        return texts

    def layer(self, layer: Layer) -> str:
        fields = _layer_fields(layer)
        key = id(layer)
        known = self._layers.get(key)
        if known is not None and known[0]() is layer and known[1] == fields:
            return known[2]
        text = dumps(layer_to_json(layer))
        with self._lock:
            self._layers[key] = (weakref.ref(layer, self._forget(key)), fields, text)
        return text

    def _forget(self, key: int) -> Any:
        def forget(ref: weakref.ref[Layer]) -> None:
            with self._lock:
                known = self._layers.get(key)
                if known is not None and known[0] is ref:
                    del self._layers[key]
        return forget

    def drop(self, name: str) -> None:
        """Forget a deleted graph's structure."""
        with self._lock:
            self._structures.pop(name, None)
