"""The state store interface: what the service needs to survive a restart or a crash."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from service.core.graph import Graph

__all__ = ["StateStore"]


class StateStore(ABC):
    """Persists graphs. ``commit`` is all-or-nothing: after a crash at any instant, a load
    returns the state of the last completed commit, never a mix of two."""

    @abstractmethod
    def load(self) -> dict[str, Graph]:
        """Every graph with its layers, naming counters, variables (values included) and records."""

    @abstractmethod
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        """Persist ``graph``: its structure, the values of the named ``variables`` and the
        per-input records of the named ``layers`` (the rest are unchanged since the last commit)."""

    def close(self) -> None:  # noqa: B027 - optional hook; the filesystem store holds nothing open
        """Release connections or handles."""
