"""The state store interface: what the service needs to survive a restart or a crash, and to
share its state with other replicas."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from layerserve.server.core.graph import Graph
from layerserve.server.store.versions import Changes, StaleGraph, Stamper

__all__ = ["StaleGraph", "StateStore"]


class StateStore(ABC):
    """Persists graphs. ``commit`` is all-or-nothing: after a crash at any instant, a load
    returns the state of the last completed commit, never a mix of two.

    A store that other processes write too (``shared``) raises ``StaleGraph`` from ``commit``
    when the graph was committed elsewhere since it was read; ``refresh`` then gives the
    current copy and the caller retries its operation on it."""

    shared = False

    def __init__(self) -> None:
        # graph -> why it could not be loaded (the file and the reason): it is not served, and
        # nothing may overwrite it until someone repairs or removes it
        self.damaged: dict[str, str] = {}
        self.stamper = Stamper()

    @abstractmethod
    def load(self) -> dict[str, Graph]:
        """Every graph with its layers, naming counters, variables (values included) and records."""

    @abstractmethod
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        """Persist ``graph``: its structure, the values of the named ``variables`` and the
        per-input records of the named ``layers`` (the rest are unchanged since the last commit).
        Implementations start with ``self.stamp`` and write nothing when it finds no change."""

    def stamp(self, graph: Graph, variables: Iterable[str], layers: Iterable[str]) -> Changes:
        """What the commit changes; moves the graph's revision and its entries' versions."""
        return self.stamper.stamp(graph, variables, layers)

    def flush(self, name: str) -> None:  # noqa: B027 - optional hook; most stores write every commit at once
        """Write graph ``name``'s acknowledged commits that are not written yet (write-behind)."""

    def refresh(self, name: str, cached: Graph | None) -> Graph | None:
        """The current copy of graph ``name``: ``cached`` itself while nobody else committed it
        (always, for a store no other process writes), None when it does not exist."""
        return cached

    async def head_revision_async(self, name: str) -> int | None:
        """The graph's current revision, read without blocking the event loop, so that an apply
        can learn whether its cached copy is current before it picks a thread; None where no
        other process writes (every copy is current)."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the event loop side holds."""

    def watch(self, on_commit: Callable[[str, int], None]) -> None:  # noqa: B027 - optional hook
        """Call ``on_commit(graph, revision)`` when another process may have committed, to warm
        caches early. A hint only: ``refresh`` alone decides what is current."""

    def healthy(self) -> bool:
        """Whether the store answers (readiness)."""
        return True

    def graph_names(self, known: Iterable[str]) -> list[str]:
        """Every graph's name; ``known`` are the ones this process holds."""
        return sorted(known)

    def close(self) -> None:  # noqa: B027 - optional hook; the filesystem store holds nothing open
        """Release connections or handles."""

