"""The server's variables and pending updates, as the client sees them."""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve import _routes
from layerserve._client import Client

__all__ = ["RemoteUpdate", "RemoteVariable"]


class RemoteVariable:
    """A variable held by the server (``dense/kernel:0``); ``numpy()`` fetches its value."""

    def __init__(self, conn: Client, layer: Any, name: str, shape: tuple[int, ...], dtype: str, *,
                 trainable: bool) -> None:
        self._conn, self._layer = conn, layer
        self.name, self.shape, self.dtype, self.trainable = name, shape, dtype, trainable

    @classmethod
    def _from_json(cls, conn: Client, layer: Any, data: dict[str, Any]) -> RemoteVariable:
        return cls(conn, layer, data["name"], tuple(data["shape"]), data["dtype"], trainable=data["trainable"])

    def numpy(self) -> np.ndarray:
        return self._conn.request(_routes.variable_value(self._conn.graph, self.name)).tensors[0].copy()

    def __repr__(self) -> str:
        return f"RemoteVariable({self.name!r}, {self.shape}, {self.dtype})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteVariable) and (self._conn.url, self._conn.graph, self.name) == (
            other._conn.url, other._conn.graph, other.name)

    def __hash__(self) -> int:
        return hash((self._conn.url, self._conn.graph, self.name))


class RemoteUpdate:
    """A pending update: ``variable`` would hold ``value`` after this update alone."""

    def __init__(self, variable: str, value: np.ndarray, input: str | None = None) -> None:
        self.variable, self.value, self.input = variable, value, input

    def __repr__(self) -> str:
        return f"RemoteUpdate({self.variable!r}, shape={self.value.shape})"
