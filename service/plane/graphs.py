"""The graph cache: every graph this process serves, kept current with the store.

With a store that other replicas write too, every call first brings its graph up to date
(``StateStore.refresh``: one round trip when nothing changed).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from layerserve.server.config import Settings
from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer
from layerserve.server.core.naming import GRAPH_NAME, check_name
from layerserve.server.errors import NotFound, StoreUnavailable
from layerserve.server.plane.transactions import layer_gone, mutation
from layerserve.server.runtime.executor import Executor
from layerserve.server.store.base import StateStore

__all__ = ["CommitListener", "GraphPlane"]

# Called after each commit that made a new revision, with the graph and the variables it wrote.
CommitListener = Callable[[Graph, list[str]], None]
DeleteListener = Callable[[str, Layer], None]  # (graph, the layer just deleted)


class GraphPlane:
    """The graphs, their cache and the store's commit: what every part of the plane stands on."""

    def __init__(self, settings: Settings, store: StateStore, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.graphs: dict[str, Graph] = store.load()
        self._graphs_lock = threading.Lock()
        self.commit_listeners: list[CommitListener] = []
        self.delete_listeners: list[DeleteListener] = []  # after a layer's delete was committed
        # (graph, checkpoint name) -> its variables' values, for applies pinned to it (set by plane.checkpoints)
        self.pinned_values: Callable[[str, str], Mapping[str, np.ndarray]] | None = None
        store.watch(self._warm)

    def graph(self, name: str, *, create: bool = False, revision: int | None = None) -> Graph:
        """The graph, current: ``revision``, when given, is the store's revision just read."""
        check_name(name, GRAPH_NAME, "graph name")
        if name in self.store.damaged:
            raise StoreUnavailable(f"graph {name!r} is not served: it could not be loaded ({self.store.damaged[name]}); "
                                   "repair or remove it (its directory, or its keys in Redis) and restart",
                                   code="graph_damaged")
        cached = self.graphs.get(name)
        if cached is not None and revision is not None and cached.revision == revision:
            return cached
        current = self.store.refresh(name, cached)
        if current is not None and current is cached:
            return current
        with self._graphs_lock:
            installed = self.graphs.get(name)
            if current is None:
                if not create and name != "default":
                    raise NotFound(f"no graph {name!r}", code="graph_not_found")
                current = installed if installed is not None and installed.revision == 0 else Graph(name)
            elif installed is not None and 0 <= current.revision < installed.revision:
                return installed  # another thread installed a newer copy meanwhile
            if installed is not None and installed is not current:
                current.lock = installed.lock  # one writer at a time per graph in this process
                self._forget_removed(installed, current)
            self.graphs[name] = current
            return current

    def _warm(self, name: str, revision: int) -> None:
        """Another replica committed: refresh a graph this one serves before a request needs it."""
        cached = self.graphs.get(name)
        if cached is not None and revision >= 0 and cached.revision < revision:
            with contextlib.suppress(Exception):  # warming is a hint; the next request refreshes anyway
                self.graph(name)

    def _forget_removed(self, old: Graph, new: Graph) -> None:
        for layer_id in old.layers.keys() - new.layers.keys():
            self.executor.forget(old.layers[layer_id].key)

    def graph_names(self) -> list[str]:
        return self.store.graph_names(list(self.graphs))

    def layer(self, graph: str, ref: str, revision: int | None = None) -> tuple[Graph, Layer]:
        g = self.graph(graph, revision=revision)
        return g, g.resolve(ref)

    def version(self, graph: str, ref: str) -> int:
        g, layer = self.layer(graph, ref)
        return g.layer_version(layer)

    def active_providers(self) -> list[str]:
        return self.executor.sessions.active_providers()

    def variable_value(self, graph: str, name: str) -> tuple[dict[str, Any], np.ndarray]:
        g = self.graph(graph)
        values = g.values
        if name not in g.variables or name not in values:
            raise NotFound(f"graph {graph!r} has no variable {name[:200]!r}", code="variable_not_found")
        return g.variables[name].to_json(), values[name]

    @staticmethod
    def values_of(g: Graph, layer: Layer, names: list[str], values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The variables' values from the snapshot ``values``; a layer deleted since its lookup is 404."""
        if g.layers.get(layer.id) is not layer or any(n not in values for n in names):
            raise layer_gone(g, layer)
        return {n: values[n] for n in names}

    # ---- persistence -------------------------------------------------------------------
    def _mutation(self, g: Graph, *touched: Layer) -> AbstractContextManager[None]:
        return mutation(g, *touched)

    def _commit(self, g: Graph, variables: list[str] | None = None, layers: list[str] | None = None) -> None:
        before = g.revision
        self.store.commit(g, variables or (), layers or ())
        if g.revision != before:
            for listener in self.commit_listeners:
                listener(g, list(variables or ()))
