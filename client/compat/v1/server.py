"""The server graph a client graph runs on, bound at its first use of the server."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from layerserve.connection import Connection, get_default_connection

if TYPE_CHECKING:
    from layerserve.compat.v1.graph import Graph

__all__ = ["Binding", "binding"]

_claimed: set[tuple[str, str]] = set()
_counter = itertools.count(1)


class Binding:
    """A connection whose ``graph`` is this client graph's own server graph."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.programs: dict[str, str] = {}  # content hash -> program id registered

    def post(self, suffix: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.conn.call("POST", f"/v1/graphs/{self.conn.graph}{suffix}", body, **kw)

    def create_variable(self, name: str, value: np.ndarray, *, trainable: bool) -> None:
        self.post("/variables", {"name": name, "trainable": trainable}, tensors=[value], request_key="value")


def binding(graph: Graph, url: str | None = None) -> Binding:
    """The graph's binding; the first client graph on a connection takes the connection's server
    graph, later ones (after ``reset_default_graph``) a fresh one beside it, as TF's new graph is empty."""
    if graph.binding is None:
        base = get_default_connection() if url is None else Connection(url)
        name = base.graph
        while (base.url, name) in _claimed:
            name = f"{base.graph}-{next(_counter)}"
        _claimed.add((base.url, name))
        conn = base if name == base.graph else Connection(base.url, graph=name, token=base.token,
                                                          binary=base.binary)
        graph.binding = Binding(conn)
    return graph.binding  # type: ignore[no-any-return]
