"""``RemoteVariable.assign``: one variable's new value, written with its layer's other weights
under ``If-Match``, so a concurrent writer is never overwritten with a stale value."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from layerserve import _routes
from layerserve._core import prepare_request
from layerserve.exceptions import LayerServeError

if TYPE_CHECKING:
    from layerserve.layers.variables import RemoteVariable

__all__ = ["assign_variable"]

_ATTEMPTS = 8


def _owner_id(var: RemoteVariable) -> str:
    """The id of the layer that holds ``var`` (the first of its owners, when several share it)."""
    if var._layer is not None:
        return str(var._layer.id)
    for described in var._conn.request(_routes.list_layers(var._conn.graph)).body["layers"]:
        if any(v["name"] == var.name for v in described["variables"]):
            return str(described["id"])
    raise ValueError(f"variable {var.name!r} belongs to no layer of graph {var._conn.graph!r}")


def assign_variable(var: RemoteVariable, value: np.ndarray) -> None:
    if tuple(value.shape) != tuple(var.shape):
        raise ValueError(f"Cannot assign value to variable ' {var.name}': Shape mismatch.The variable shape "
                         f"{tuple(var.shape)}, and the assigned value shape {tuple(value.shape)} are incompatible.")
    conn, layer_id = var._conn, _owner_id(var)
    for attempt in range(_ATTEMPTS):
        current = conn.request(_routes.get_weights(conn.graph, layer_id))
        names = list(current.body["names"])
        weights = [t.copy() for t in current.tensors]
        weights[names.index(var.name)] = value.astype(var.dtype)
        call = prepare_request(_routes.set_weights(conn.graph, layer_id, weights), binary=conn.binary)
        version = {k.lower(): v for k, v in current.headers.items()}.get("x-layer-version")
        if version is not None:
            call.headers["if-match"] = f'"{version}"'
        try:
            conn.send(call)
            return
        except LayerServeError as exc:
            if exc.status != 409 or attempt == _ATTEMPTS - 1:  # 409: another write came first
                raise
