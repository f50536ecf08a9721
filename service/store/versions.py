"""Revisions: what a commit changes, and the version stamps it gives.

Every commit that changes something moves its graph's revision by one and stamps each
changed entry (see ``entries``) with the new revision; ``Graph.layer_version`` is the newest
stamp among a layer's definition and its variables' values. Definitions are compared as
canonical JSON against the texts of the revision the graph was read at, so the data plane
need not say which definitions an operation touched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from service.core.graph import Graph
from service.store.entries import definition_texts

__all__ = ["Changes", "StaleGraph", "Stamper"]


class StaleGraph(Exception):
    """The graph was committed by another writer since this copy was read: reload and retry."""


@dataclass
class Changes:
    base: int  # the revision the commit was computed from
    revision: int  # the revision it creates
    texts: dict[str, str] = field(default_factory=dict)  # changed "G" / "L:<id>" entries
    values: list[str] = field(default_factory=list)  # variables whose value changed
    records: list[str] = field(default_factory=list)  # layers whose records changed
    removed: list[str] = field(default_factory=list)  # entries that no longer exist

    @property
    def empty(self) -> bool:
        return not (self.texts or self.values or self.records or self.removed)

    def fields(self) -> list[str]:
        return [*self.texts, *(f"V:{n}" for n in self.values), *(f"R:{i}" for i in self.records)]


class Stamper:
    """Per graph, the definition texts as of the revision last read or committed."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[int, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def remember(self, graph: Graph) -> None:
        texts = definition_texts(graph)
        with self._lock:
            known = self._texts.get(graph.name)
            if known is None or known[0] <= graph.revision:
                self._texts[graph.name] = (graph.revision, texts)

    def saved(self, name: str) -> tuple[int, dict[str, str]] | None:
        """What ``restore`` needs to undo a stamp whose commit then failed."""
        with self._lock:
            return self._texts.get(name)

    def restore(self, name: str, saved: tuple[int, dict[str, str]] | None) -> None:
        with self._lock:
            if saved is None:
                self._texts.pop(name, None)
            else:
                self._texts[name] = saved

    def forget(self, name: str) -> None:
        with self._lock:
            self._texts.pop(name, None)

    def stamp(self, graph: Graph, variables: Iterable[str], layers: Iterable[str]) -> Changes:
        """The changes since the graph's revision, stamped on the graph (nothing when empty)."""
        with self._lock:
            base, old = self._texts.get(graph.name, (0, {}))
        if base != graph.revision:
            raise StaleGraph(f"graph {graph.name!r} at revision {graph.revision} was read before {base}")
        texts = definition_texts(graph)
        changes = Changes(graph.revision, graph.revision + 1,
                          texts={k: t for k, t in texts.items() if old.get(k) != t},
                          values=sorted({n for n in variables if n in graph.variables}),
                          records=sorted({i for i in layers if i in graph.layers}))
        live = {*texts, *(f"V:{n}" for n in graph.variables), *(f"R:{i}" for i in graph.layers)}
        changes.removed = sorted(k for k in graph.versions if k not in live)
        if changes.empty:
            return changes
        for key in changes.fields():
            graph.versions[key] = changes.revision
        for key in changes.removed:
            del graph.versions[key]
        graph.revision = changes.revision
        with self._lock:
            self._texts[graph.name] = (changes.revision, texts)
        return changes
