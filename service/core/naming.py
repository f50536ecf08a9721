"""TensorFlow's two naming schemes (layer-api.md §3), one instance per graph.

- ``layer.name``: given at construction; snake_case class name plus a per-class counter
  that starts at 1 (``dense_1``); an explicit name is kept as is, even when repeated.
- ``scope_name``: the variable scope, given at first use; the base name made unique among
  the scopes opened so far, zero-based (``dense``, ``dense_1``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GraphNames", "to_snake_case"]


def to_snake_case(class_name: str) -> str:
    """Keras' conversion: ``Conv2DTranspose`` -> ``conv2d_transpose``."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    if insecure[0] != "_":
        return insecure
    return "private" + insecure


@dataclass
class GraphNames:
    """The counters behind both names. Plain data, so the store can persist it."""

    layer_counts: dict[str, int] = field(default_factory=dict)
    scope_counts: dict[str, int] = field(default_factory=dict)

    def new_layer_name(self, base: str) -> str:
        count = self.layer_counts.get(base, 0) + 1
        self.layer_counts[base] = count
        return f"{base}_{count}"

    def unique_scope(self, base: str) -> str:
        """TF's ``variable_scope(None, default_name=base)``: zero-based uniquification."""
        name = base
        if self.scope_counts.get(name, 0) > 0:
            idx = 1
            while self.scope_counts.get(f"{base}_{idx}", 0) > 0:
                idx += 1
            name = f"{base}_{idx}"
        self.open_scope(name)
        return name

    def open_scope(self, name: str) -> None:
        self.scope_counts[name] = self.scope_counts.get(name, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"layer_counts": dict(self.layer_counts), "scope_counts": dict(self.scope_counts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphNames:
        return cls(dict(data.get("layer_counts", {})), dict(data.get("scope_counts", {})))
