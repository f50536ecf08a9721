"""The server's variables and pending updates, as the client sees them."""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve import _routes
from layerserve._client import Client

__all__ = ["RemoteUpdate", "RemoteVariable", "TensorShape"]


class TensorShape(tuple[int, ...]):
    """A variable's shape: a tuple of ints with TF's ``as_list()``, ``rank`` and ``ndims``."""

    def as_list(self) -> list[int]:
        return list(self)

    @property
    def rank(self) -> int:
        return len(self)

    ndims = rank

    def __repr__(self) -> str:
        return f"TensorShape({list(self)})"

    def __str__(self) -> str:
        return tuple.__repr__(self)


class RemoteVariable:
    """A variable held by the server (``dense/kernel:0``), used as TF's ``tf.Variable``: ``numpy()``,
    ``value()`` and ``read_value()`` fetch its value (``np.asarray(var)`` too), ``assign`` sets it."""

    def __init__(self, conn: Client, layer: Any, name: str, shape: tuple[int, ...], dtype: str, *,
                 trainable: bool) -> None:
        self._conn, self._layer = conn, layer
        self.name, self.shape, self.dtype, self.trainable = name, TensorShape(shape), dtype, trainable

    @classmethod
    def _from_json(cls, conn: Client, layer: Any, data: dict[str, Any]) -> RemoteVariable:
        return cls(conn, layer, data["name"], tuple(data["shape"]), data["dtype"], trainable=data["trainable"])

    def numpy(self) -> np.ndarray:
        return self._conn.request(_routes.variable_value(self._conn.graph, self.name)).tensors[0].copy()

    def value(self) -> np.ndarray:
        return self.numpy()

    def read_value(self) -> np.ndarray:
        return self.numpy()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:  # noqa: FBT001 - numpy's protocol
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    def assign(self, value: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:  # noqa: FBT001, FBT002 - TF's signature
        """Set the variable's value on the server (shape and dtype as TF checks them); returns the
        variable, as TF's eager ``assign`` does, or None when ``read_value=False``."""
        from layerserve.layers._assign import assign_variable

        assign_variable(self, np.asarray(value))
        return self if read_value else None

    def assign_add(self, delta: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:  # noqa: FBT001, FBT002 - TF's signature
        return self.assign(self.numpy() + np.asarray(delta, dtype=self.dtype), read_value=read_value)

    def assign_sub(self, delta: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:  # noqa: FBT001, FBT002 - TF's signature
        return self.assign(self.numpy() - np.asarray(delta, dtype=self.dtype), read_value=read_value)

    def get_shape(self) -> TensorShape:
        return self.shape

    def __repr__(self) -> str:
        return (f"<RemoteVariable {self.name!r} shape={tuple(self.shape)} dtype={self.dtype} "
                f"trainable={self.trainable} graph={self._conn.graph!r}>")

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
