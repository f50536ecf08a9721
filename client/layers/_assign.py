"""``RemoteVariable.assign``: one variable's new value, written with its layer's other weights
under ``If-Match``, so a concurrent writer is never overwritten with a stale value."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from layerserve.exceptions import LayerServeError

if TYPE_CHECKING:
    from layerserve.layers.base import Layer, RemoteVariable

__all__ = ["assign_variable"]

_ATTEMPTS = 8


def _owner(var: RemoteVariable) -> Layer:
    if var._layer is not None:
        return var._layer
    for layer in var._conn.list_layers():
        if any(v.name == var.name for v in layer.variables):
            return layer
    raise ValueError(f"variable {var.name!r} belongs to no layer of graph {var._conn.graph!r}")


def assign_variable(var: RemoteVariable, value: np.ndarray) -> None:
    if tuple(value.shape) != tuple(var.shape):
        raise ValueError(f"Cannot assign value to variable ' {var.name}': Shape mismatch.The variable shape "
                         f"{tuple(var.shape)}, and the assigned value shape {tuple(value.shape)} are incompatible.")
    layer = _owner(var)
    for attempt in range(_ATTEMPTS):
        current = layer._call("GET", "/weights", accept_tensors=True, tensor_key="weights")
        names = list(current.body["names"])
        weights = [t.copy() for t in current.tensors]
        weights[names.index(var.name)] = value.astype(var.dtype)
        call = layer._conn._prepare("PUT", layer._path("/weights"), {}, weights, request_key="weights")
        version = {k.lower(): v for k, v in current.headers.items()}.get("x-layer-version")
        if version is not None:
            call.headers["if-match"] = f'"{version}"'
        try:
            layer._conn.send(call)
            return
        except LayerServeError as exc:
            if exc.status != 409 or attempt == _ATTEMPTS - 1:  # 409: another write came first
                raise
