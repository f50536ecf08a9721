"""TensorFlow's two naming schemes (layer-api.md §3), one instance per graph.

- ``layer.name``: given at construction; snake_case class name plus a per-class counter
  that starts at 1 (``dense_1``); an explicit name is kept as is, even when repeated.
- ``scope_name``: the variable scope, given at first use; the base name made unique among
  the scopes opened so far, zero-based (``dense``, ``dense_1``, ...).

Also the rules a graph or layer name given in a request must obey.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from layerserve.server.errors import InvalidArgument

__all__ = ["GRAPH_NAME", "LAYER_ID", "LAYER_ID_PREFIX", "LAYER_NAME", "SCOPE_NAME", "GraphNames", "check_name",
           "layer_ref_problem"]


# The graph and layer names a request may use.
GRAPH_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The contract's [A-Za-z0-9_.-]{1,128}, less "." and names holding "..": HTTP clients rewrite
# a "." or ".." path segment, so such a layer could never be addressed by name.
LAYER_NAME = re.compile(r"(?!\.\Z)(?!.*\.\.)[A-Za-z0-9_.-]{1,128}")
# A layer's id: the prefix, then its number in the graph (never a valid name, so never ambiguous).
LAYER_ID_PREFIX = "~"
LAYER_ID = re.compile(re.escape(LAYER_ID_PREFIX) + r"[0-9]{1,18}")
# A variable scope: names joined by "/" (graph mode's nested scopes, ``net/hidden``).
SCOPE_NAME = re.compile(r"(?!.*\.\.)(?!/)(?!.*//)(?!.*/$)[A-Za-z0-9_./-]{1,256}")


def check_name(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(f"{what} must match {pattern.pattern}, got {str(value)[:80]!r}", code="invalid_name")
    return value


def layer_ref_problem(ref: str) -> InvalidArgument | None:
    """Why ``ref`` can name no layer (neither a layer name nor an id), or None."""
    if LAYER_NAME.fullmatch(ref) or LAYER_ID.fullmatch(ref):
        return None
    return InvalidArgument(f"a layer is named by its id or a name matching {LAYER_NAME.pattern}, got {ref[:80]!r}",
                           code="invalid_name")


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
