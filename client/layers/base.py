"""The remote ``Layer``: TensorFlow's legacy Layer API, executed by a layerserve server.

A layer is created on the server when it is constructed (so ``name`` is TF's ``dense_1``);
every property reads the server's current state, so several processes may share a layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from client._core import Result, layer_path
from client._protocol import input_ref
from client._serialize import dtype_name, to_wire
from client.connection import AsyncConnection, Connection, get_default_connection

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["InputSpec", "Layer", "RemoteUpdate", "RemoteVariable"]


class InputSpec:
    """TF's ``InputSpec``: the rank, axes and dtype a layer accepts."""

    def __init__(self, dtype: str | None = None, shape: Sequence[int | None] | None = None,
                 ndim: int | None = None, max_ndim: int | None = None, min_ndim: int | None = None,
                 axes: dict[int, int] | None = None) -> None:
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> InputSpec:
        axes = {int(k): int(v) for k, v in (data.get("axes") or {}).items()}
        return cls(data.get("dtype"), data.get("shape"), data.get("ndim"), data.get("max_ndim"),
                   data.get("min_ndim"), axes)

    def __repr__(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("dtype", "shape", "ndim", "max_ndim", "min_ndim")
                 if getattr(self, k) is not None]
        if self.axes:
            parts.append(f"axes={self.axes}")
        return f"InputSpec({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputSpec) and vars(self) == vars(other)


class RemoteVariable:
    """A variable held by the server (``dense/kernel:0``); ``numpy()`` fetches its value."""

    def __init__(self, conn: Connection, layer: Layer | None, name: str, shape: tuple[int, ...], dtype: str,
                 trainable: bool) -> None:
        self._conn, self._layer = conn, layer
        self.name, self.shape, self.dtype, self.trainable = name, shape, dtype, trainable

    @classmethod
    def _from_json(cls, conn: Connection, layer: Layer | None, data: dict[str, Any]) -> RemoteVariable:
        return cls(conn, layer, data["name"], tuple(data["shape"]), data["dtype"], data["trainable"])

    def numpy(self) -> np.ndarray:
        result = self._conn.call("GET", f"/v1/graphs/{self._conn.graph}/variables/{self.name}",
                                 accept_tensors=True, tensor_key="values")
        return result.tensors[0].copy()

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


def _inputs(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, (list, tuple)) and inputs and all(hasattr(i, "shape") for i in inputs):
        return [np.asarray(i) for i in inputs]
    return [np.asarray(inputs)]


def _refs(inputs: Any) -> list[str] | None:
    if inputs is None:
        return None
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return [i if isinstance(i, str) else input_ref(np.asarray(i)) for i in items]


def _scalar(loss: dict[str, Any]) -> np.generic:
    value: np.generic = np.dtype(loss.get("dtype", "float32")).type(loss["value"])
    return value


class Layer:
    """Base class of the remote layers, with TF's ``Layer(trainable, name, dtype, **kwargs)``."""

    _class_name: ClassVar[str] = "Layer"

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None, *,
                 _connection: Connection | None = None, _scope: str | None = None, _reuse: bool | None = None,
                 _config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        conn = _connection or get_default_connection()
        config = {k: to_wire(v, k) for k, v in {**(_config or {}), **kwargs}.items()}
        body = {"class": self._class_name, "name": name, "trainable": trainable, "dtype": dtype_name(dtype),
                "config": config, "scope": _scope, "reuse": _reuse}
        described = conn.call("POST", f"/v1/graphs/{conn.graph}/layers", body).body
        self._bind(conn, described)

    def _bind(self, conn: Connection, described: dict[str, Any]) -> None:
        self._conn = conn
        self._id: str = described["id"]
        self._name: str = described["name"]

    @classmethod
    def _from_description(cls, conn: Connection, described: dict[str, Any]) -> Layer:
        from client.layers import class_for

        layer = object.__new__(class_for(described["class"]))
        layer._bind(conn, described)
        return layer

    # ---- plumbing ------------------------------------------------------------------
    def _path(self, suffix: str = "") -> str:
        return layer_path(self._conn.graph, self._id, suffix)

    def _call(self, method: str, suffix: str = "", body: dict[str, Any] | None = None, **kw: Any) -> Result:
        return self._conn.call(method, self._path(suffix), body, **kw)

    def _describe(self) -> dict[str, Any]:
        return self._call("GET").body

    # ---- identity and state ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> str:
        return self._id

    @property
    def graph(self) -> str:
        """The graph's name (TF returns None in graph mode; a name is more useful here)."""
        return self._conn.graph

    @property
    def scope_name(self) -> str:
        scope = self._describe()["scope_name"]
        if scope is None:
            raise ValueError(
                f'No name available for layer scope because the layer "{self._name}" has not been used yet. '
                "The scope name  is determined the first time the layer instance is called. You must therefore "
                "call the layer before querying `scope_name`.")
        return str(scope)

    @property
    def dtype(self) -> str | None:
        return self._describe()["dtype"]  # type: ignore[no-any-return]

    @property
    def built(self) -> bool:
        return bool(self._describe()["built"])

    @property
    def trainable(self) -> bool:
        return bool(self._describe()["trainable"])

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._call("PATCH", body={"trainable": bool(value)})

    @property
    def input_spec(self) -> InputSpec | None:
        spec = self._describe()["input_spec"]
        return None if spec is None else InputSpec._from_json(spec)

    # ---- variables -----------------------------------------------------------------
    def _variables(self, key: str) -> list[RemoteVariable]:
        described = self._describe()
        table = {v["name"]: v for v in described["variables"]}
        names = [v["name"] for v in described["variables"]] if key == "variables" else described[key]
        return [RemoteVariable._from_json(self._conn, self, table[n]) for n in names]

    @property
    def variables(self) -> list[RemoteVariable]:
        return self._variables("variables")

    @property
    def trainable_variables(self) -> list[RemoteVariable]:
        return self._variables("trainable_variables")

    @property
    def non_trainable_variables(self) -> list[RemoteVariable]:
        return self._variables("non_trainable_variables")

    weights = variables
    trainable_weights = trainable_variables
    non_trainable_weights = non_trainable_variables

    def get_weights(self) -> list[np.ndarray]:
        return [t.copy() for t in self._call("GET", "/weights", accept_tensors=True, tensor_key="weights").tensors]

    def set_weights(self, weights: Sequence[Any]) -> None:
        arrays = [np.asarray(w) for w in weights]
        self._call("PUT", "/weights", {}, tensors=arrays, request_key="weights")

    def count_params(self) -> int:
        count = self._describe()["count_params"]
        if count is None:
            raise ValueError(f"You tried to call `count_params` on layer {self._name}, but the layer isn't built. "
                             f"You can build it manually via: `{self._name}.build(batch_input_shape)`.")
        return int(count)

    # ---- build and apply -----------------------------------------------------------
    def build(self, input_shape: Sequence[int | None], dtype: Any = None) -> None:
        """TF's ``build``; ``dtype`` (an extension) builds for inputs of that dtype, else float32."""
        self._call("POST", "/build", {"input_shape": list(input_shape), "dtype": dtype_name(dtype)})

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__call__(inputs, *args, **kwargs)

    def __call__(self, inputs: Any, *args: Any, training: Any = None, **kwargs: Any) -> Any:
        result = self._call("POST", "/apply", {"training": _training(training)}, tensors=_inputs(inputs),
                            accept_tensors=True)
        outputs = [t.copy() for t in result.tensors]
        return outputs[0] if len(outputs) == 1 else outputs

    async def apply_async(self, inputs: Any, training: Any = None, connection: AsyncConnection | None = None) -> Any:
        """``apply`` for asyncio programs, over ``connection`` (or a fresh one to the same server)."""
        conn = connection or AsyncConnection(self._conn.url, self._conn.graph, self._conn.token, self._conn.binary)
        try:
            result = await conn.call("POST", self._path("/apply"), {"training": _training(training)},
                                     _inputs(inputs), accept_tensors=True)
        finally:
            if connection is None:
                await conn.aclose()
        outputs = [t.copy() for t in result.tensors]
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        body = self._call("POST", "/compute_output_shape", {"input_shape": list(input_shape)}).body
        return tuple(body["output_shape"])

    # ---- losses and updates --------------------------------------------------------
    @property
    def losses(self) -> list[np.generic]:
        return [_scalar(x) for x in self._call("GET", "/losses").body["losses"]]

    def get_losses_for(self, inputs: Any) -> list[np.generic]:
        body = self._call("POST", "/losses:for", {"inputs": _refs(inputs)}).body
        return [_scalar(x) for x in body["losses"]]

    @property
    def updates(self) -> list[RemoteUpdate]:
        return _updates(self._call("GET", "/updates").body)

    def get_updates_for(self, inputs: Any) -> list[RemoteUpdate]:
        return _updates(self._call("POST", "/updates:for", {"inputs": _refs(inputs)}).body)

    def run_updates(self, inputs: Any = None) -> list[str]:
        """Apply the pending updates of ``inputs`` (all of them when None) to the variables."""
        body = self._call("POST", "/updates:run", {"inputs": _refs(inputs)}).body
        return list(body["updated_variables"])

    # ---- config --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dict(self._describe()["config"])

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        conn = get_default_connection()
        layer = object.__new__(cls)
        body = {"class": cls._class_name, "config": dict(config)}
        layer._bind(conn, conn.call("POST", f"/v1/graphs/{conn.graph}/layers", body).body)
        return layer

    def delete(self) -> None:
        """Remove the layer (and the variables no other layer shares) from the server."""
        self._call("DELETE")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} id={self._id} graph={self._conn.graph!r}>"


def _training(training: Any) -> bool | None:
    return None if training is None else bool(training)


def _updates(body: dict[str, Any]) -> list[RemoteUpdate]:
    out = []
    for u in body["updates"]:
        v = u["value"]
        out.append(RemoteUpdate(u["variable"], np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"]),
                                u.get("input")))
    return out


def functional(layer: Layer, inputs: Any, training: Any = None) -> Any:
    """Apply a layer made by a functional form once; drop it from the server if that fails."""
    try:
        return layer.apply(inputs, training=training)
    except Exception:
        try:
            layer.delete()
        except Exception:
            pass
        raise
