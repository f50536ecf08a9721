"""layerserve's Python client: ``tf.compat.v1.layers`` executed by a layerserve server.

    import client
    client.connect("http://127.0.0.1:8000")
    dense = client.layers.Dense(4, activation="relu")
    y = dense(np.ones((2, 3), np.float32))
"""

from __future__ import annotations

from client import exceptions, initializers, layers, ops, regularizers
from client.connection import AsyncConnection, Connection, connect, get_default_connection
from client.layers import InputSpec, Layer, RemoteUpdate, RemoteVariable

__all__ = [
    "AsyncConnection", "Connection", "InputSpec", "Layer", "RemoteUpdate", "RemoteVariable", "connect",
    "exceptions", "get_default_connection", "initializers", "layers", "ops", "regularizers",
]

__version__ = "0.1.0"
