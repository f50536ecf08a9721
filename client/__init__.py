"""layerserve's Python client: ``tf.compat.v1.layers`` executed by a layerserve server.

    import layerserve
    layerserve.connect("http://127.0.0.1:8000")
    dense = layerserve.layers.Dense(4, activation="relu")
    y = dense(np.ones((2, 3), np.float32))
"""

from __future__ import annotations

from layerserve import exceptions, initializers, layers, ops, regularizers
from layerserve.connection import AsyncConnection, Connection, connect, get_default_connection
from layerserve.layers import InputSpec, Layer, RemoteUpdate, RemoteVariable

__all__ = [
    "AsyncConnection", "Connection", "InputSpec", "Layer", "RemoteUpdate", "RemoteVariable", "connect",
    "exceptions", "get_default_connection", "initializers", "layers", "ops", "regularizers",
]

__version__ = "0.1.0"
