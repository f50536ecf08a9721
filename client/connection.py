"""Connections to a layerserve server: ``Connection`` (sync) and ``AsyncConnection``.

Both are the thin shells of ``layerserve._client`` (sending what the I/O-free core builds) with
the checkpoint calls (``layerserve._checkpoints``); ``Connection`` adds the graph-wide
operations and ``conn.layers``: the layer classes bound to it.
"""

from __future__ import annotations

from typing import Any

from layerserve import _routes
from layerserve._checkpoints import AsyncCheckpointCalls, CheckpointCalls
from layerserve._client import AsyncClient, Client, default_client, set_default_client
from layerserve._transport import Transport
from layerserve.layers import BoundLayers, Layer, RemoteVariable

__all__ = ["AsyncConnection", "Connection", "connect", "get_default_connection"]


class Connection(Client, CheckpointCalls):
    """A sync connection (one pooled HTTP/1.1 client). ``conn.layers.Dense(...)`` uses it."""

    def __init__(self, url: str | None = None, graph: str = "default", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0,  # noqa: FBT001, FBT002 - a public, positional signature
                 transport: Transport | None = None) -> None:
        super().__init__(url, graph, token, binary, timeout, transport)
        self.layers = BoundLayers(self)

    # ---- graph-wide operations ------------------------------------------------------
    def list_layers(self) -> list[Layer]:
        body = self.request(_routes.list_layers(self.graph)).body
        return [Layer._from_description(self, d) for d in body["layers"]]

    def global_variables(self) -> list[Any]:
        body = self.request(_routes.global_variables(self.graph)).body
        return [RemoteVariable._from_json(self, None, v) for v in body["variables"]]

    def run_updates(self) -> list[str]:
        """Run every pending update of every layer of the graph (TF1's UPDATE_OPS)."""
        return _routes.updated_variables(self.request(_routes.run_graph_updates(self.graph)))

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConnection(AsyncClient, AsyncCheckpointCalls):
    """An asyncio connection: ``await conn.send(call)``; layers use it through ``apply_async``."""


set_default_client(factory=Connection)


def connect(url: str | None = None, graph: str = "default", token: str | None = None,
            binary: bool = True) -> Connection:  # noqa: FBT001, FBT002 - a public, positional signature
    """Open a connection and make it the default for ``layerserve.layers``."""
    connection = Connection(url, graph=graph, token=token, binary=binary)
    set_default_client(connection)
    return connection


def get_default_connection() -> Connection:
    client = default_client()
    if not isinstance(client, Connection):  # a plain Client made the default: give it its layers
        client = Connection(client.url, client.graph, client.token, client.binary, client.timeout, client.transport)
        set_default_client(client)
    return client
