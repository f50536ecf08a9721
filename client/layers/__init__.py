"""``client.layers`` mirrors ``tf.compat.v1.layers``: the same classes and functional forms."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from client.layers.base import InputSpec, Layer, RemoteUpdate, RemoteVariable
from client.layers.core import Dense, dense

if TYPE_CHECKING:
    from client.connection import Connection

__all__ = ["BoundLayers", "Dense", "InputSpec", "Layer", "RemoteUpdate", "RemoteVariable", "class_for", "dense"]

_CLASSES: dict[str, type[Layer]] = {cls._class_name: cls for cls in (Dense,)}
_FUNCTIONS = {"dense": dense}


def class_for(class_name: str) -> type[Layer]:
    return _CLASSES.get(class_name, Layer)


class BoundLayers:
    """``conn.layers``: the same classes and functions, bound to one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name in _CLASSES:
            return functools.partial(_CLASSES[name], _connection=self._conn)
        if name in _FUNCTIONS:
            return functools.partial(_FUNCTIONS[name], _connection=self._conn)
        raise AttributeError(f"client.layers has no {name!r}")
