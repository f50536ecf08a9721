"""Revisions: what a commit changes, and the version stamps it gives.

Every commit that changes something moves its graph's revision by one and stamps each
changed entry (see ``entries``) with the new revision; ``Graph.layer_version`` is the newest
stamp among a layer's definition and its variables' values. Definitions are compared as
canonical JSON against the texts of the revision the graph was read at, so the data plane
need not say which definitions an operation touched. Only a new structure (``G``: the layer
order, the variable table, the programs) can remove entries or change the blobs, since a
layer's kind never changes: the rest of the graph is looked at only then. The blobs the definitions refer to (by
digest, see ``codec``) are tracked alongside: a commit lists the ones it adds and drops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from layerserve.server.core.graph import Graph
from layerserve.server.store.definitions import STRUCTURE, DefinitionTexts
from layerserve.server.store.entries import graph_blobs

__all__ = ["Changes", "StaleGraph", "Stamper"]

Known = tuple[int, dict[str, str], frozenset[str]]  # (revision, definition texts, blob digests)


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
    blobs: dict[str, str] = field(default_factory=dict)  # blobs now referred to, new: digest -> base64 text
    dropped_blobs: list[str] = field(default_factory=list)  # digests no longer referred to

    @property
    def empty(self) -> bool:
        return not (self.texts or self.values or self.records or self.removed)

    def fields(self) -> list[str]:
        return [*self.texts, *(f"V:{n}" for n in self.values), *(f"R:{i}" for i in self.records)]


class Stamper:
    """Per graph, the definition texts and blob digests as of the revision last read or committed."""

    def __init__(self) -> None:
        self._texts: dict[str, Known] = {}
        self._lock = threading.Lock()
        self.definitions = DefinitionTexts()

    def remember(self, graph: Graph, blobs: Iterable[str]) -> None:
        """``graph`` as just read; ``blobs``: the digests its stored definitions refer to (a
        definition stored by an older version holds its blob inline, and refers to none)."""
        texts, digests = self.definitions.of(graph), frozenset(blobs)
        if digests != graph_blobs(graph).keys():  # blobs held inline: the next commit must store them
            texts = {k: t for k, t in texts.items() if k != STRUCTURE}
        with self._lock:
            known = self._texts.get(graph.name)
            if known is None or known[0] <= graph.revision:
                self._texts[graph.name] = (graph.revision, texts, digests)

    def saved(self, name: str) -> Known | None:
        """What ``restore`` needs to undo a stamp whose commit then failed."""
        with self._lock:
            return self._texts.get(name)

    def restore(self, name: str, saved: Known | None) -> None:
        with self._lock:
            if saved is None:
                self._texts.pop(name, None)
            else:
                self._texts[name] = saved

    def forget(self, name: str) -> None:
        with self._lock:
            self._texts.pop(name, None)
        self.definitions.drop(name)

    def stamp(self, graph: Graph, variables: Iterable[str], layers: Iterable[str]) -> Changes:
        """The changes since the graph's revision, stamped on the graph (nothing when empty)."""
        with self._lock:
            base, old, old_blobs = self._texts.get(graph.name, (0, {}, frozenset()))
        if base != graph.revision:
            raise StaleGraph(f"graph {graph.name!r} at revision {graph.revision} was read before {base}")
        texts = self.definitions.of(graph)
        changes = Changes(graph.revision, graph.revision + 1,
                          texts={k: t for k, t in texts.items() if old.get(k) != t},
                          values=sorted({n for n in variables if n in graph.variables}),
                          records=sorted({i for i in layers if i in graph.layers}))
        digests = old_blobs
        if STRUCTURE in changes.texts:  # only a new structure removes entries or changes blobs (kinds never change)
            live = {*texts, *(f"V:{n}" for n in graph.variables), *(f"R:{i}" for i in graph.layers)}
            changes.removed = sorted(k for k in graph.versions if k not in live)
            blobs = graph_blobs(graph)
            changes.blobs = {d: text for d, text in blobs.items() if d not in old_blobs}
            changes.dropped_blobs = sorted(old_blobs - blobs.keys())
            digests = frozenset(blobs)
        if changes.empty:
            return changes
        for key in changes.fields():
            graph.versions[key] = changes.revision
        for key in changes.removed:
            del graph.versions[key]
        graph.revision = changes.revision
        with self._lock:
            self._texts[graph.name] = (changes.revision, texts, digests)
        return changes
