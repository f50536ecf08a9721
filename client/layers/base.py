"""The remote ``Layer``: TensorFlow's legacy Layer API, executed by a layerserve server.

A layer is created on the server when it is constructed (so ``name`` is TF's ``dense_1``);
every property reads the server's current state, so several processes may share a layer.
A subclass that defines ``call`` is a custom layer: once its ``__init__`` has returned, its
``build`` and ``call`` are recorded (``layerserve.layers.custom``) and the server creates it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from layerserve import _routes
from layerserve._client import AsyncClient, Client, default_client
from layerserve._core import Request, Result
from layerserve._foreign import is_auto_reuse
from layerserve._serialize import dtype_name, to_wire
from layerserve.layers.defining import Definable, LayerMeta
from layerserve.layers.input_spec import InputSpec
from layerserve.layers.variables import RemoteUpdate, RemoteVariable, TensorShape
from layerserve.protocol import input_ref

__all__ = ["InputSpec", "Layer", "RemoteUpdate", "RemoteVariable", "TensorShape", "class_for", "functional"]

_BUILT_IN: dict[str, type[Layer]] = {}  # class name -> client class, filled as the classes are defined


def _inputs(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, (list, tuple)) and inputs and all(hasattr(i, "shape") for i in inputs):
        return [np.asarray(i) for i in inputs]
    return [np.asarray(inputs)]


def _refs(inputs: Any) -> list[str] | None:
    if inputs is None:
        return None
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return [i if isinstance(i, str) else input_ref(np.asarray(i)) for i in items]


def class_for(class_name: str) -> type[Layer]:
    """The client class of a server-side class name (``Layer`` for a custom or unknown one)."""
    return _BUILT_IN.get(class_name, Layer)


class Layer(Definable, metaclass=LayerMeta):
    """Base class of the remote layers, with TF's ``Layer(trainable, name, dtype, **kwargs)``.

    Subclass it as in TF1: create weights in ``build(input_shape)`` with ``add_weight``,
    compute in ``call(inputs, training=None)`` with ``layerserve.ops``, register ``add_loss`` and
    ``add_update``. See the README's custom-layer example.
    """

    _class_name: ClassVar[str] = "Layer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_class_name" in cls.__dict__:  # a built-in class of tf.compat.v1.layers
            _BUILT_IN.setdefault(cls._class_name, cls)

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None, *,  # noqa: FBT001, FBT002 - TF's signature
                 _connection: Client | None = None, _scope: str | None = None, _reuse: bool | None = None,
                 _config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        conn = _connection or default_client()
        if self._class_name == "Layer":  # a custom layer: created when __init__ returns
            unknown = set(kwargs) - {"activity_regularizer"}
            if unknown:
                raise TypeError(f"('Keyword argument not understood:', {sorted(unknown)[0]!r})")
            self._conn = conn
            self._input_spec_arg = None
            self._pending = {"trainable": trainable, "name": name, "dtype": dtype_name(dtype),
                             "activity_regularizer": to_wire(kwargs.get("activity_regularizer"), "activity_regularizer")}
            return
        config = {k: to_wire(v, k) for k, v in {**(_config or {}), **kwargs}.items()}
        body = {"class": self._class_name, "name": name, "trainable": trainable, "dtype": dtype_name(dtype),
                "config": config, "scope": _scope, "reuse": _reuse_wire(_reuse)}
        self._bind(conn, conn.request(_routes.create_layer(conn.graph, body)).body)

    def _bind(self, conn: Client, described: dict[str, Any]) -> None:
        self._conn = conn
        self._id: str = described["id"]
        self._name: str = described["name"]

    @classmethod
    def _from_description(cls, conn: Client, described: dict[str, Any]) -> Layer:
        layer = object.__new__(class_for(described["class"]))
        layer._bind(conn, described)
        return layer

    # ---- plumbing ------------------------------------------------------------------
    def _send(self, route: Any, *args: Any) -> Result:
        """Send the request ``route(graph, layer id, *args)`` builds (``layerserve._routes``)."""
        request: Request = route(self._conn.graph, self._id, *args)
        return self._conn.request(request)

    def _describe(self) -> dict[str, Any]:
        return self._send(_routes.describe).body

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
        if self._definition is not None:
            return self._definition.dtype
        return self._describe()["dtype"]  # type: ignore[no-any-return]

    @property
    def built(self) -> bool:
        return bool(self._describe()["built"])

    @property
    def trainable(self) -> bool:
        return bool(self._describe()["trainable"])

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._send(_routes.patch_layer, {"trainable": bool(value)})

    @property
    def input_spec(self) -> InputSpec | list[InputSpec] | None:
        if self._pending is not None:
            return self._input_spec_arg
        spec = self._describe()["input_spec"]
        if isinstance(spec, list):
            return [InputSpec._from_json(s) for s in spec]
        return None if spec is None else InputSpec._from_json(spec)

    @input_spec.setter
    def input_spec(self, value: InputSpec | list[InputSpec] | None) -> None:
        if self._pending is None:
            raise AttributeError("a layer's input_spec is fixed once it is created; set it in __init__")
        items = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, InputSpec) for v in items):
            raise TypeError(f"Layer input_spec must be an instance of InputSpec. Got: {value}")
        self._input_spec_arg = value

    # TF's legacy layers are never eager-only, stateful or connected to a Keras graph.
    dynamic: ClassVar[bool] = False
    stateful: ClassVar[bool] = False
    supports_masking: ClassVar[bool] = True

    @property
    def input(self) -> Any:
        raise AttributeError(f"Layer {self._name} is not connected, no input to return.")

    @property
    def output(self) -> Any:
        raise AttributeError(f"Layer {self._name} has no inbound nodes.")

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
        return [t.copy() for t in self._send(_routes.get_weights).tensors]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._send(_routes.set_weights, [np.asarray(w) for w in weights])

    def count_params(self) -> int:
        count = self._describe()["count_params"]
        if count is None:
            raise ValueError(f"You tried to call `count_params` on {self._name}, but the layer isn't built. "
                             f"You can build it manually via: `{self._name}.build(batch_input_shape)`.")
        return int(count)

    # ---- build and apply -----------------------------------------------------------
    def build(self, input_shape: Any, dtype: Any = None) -> None:
        """TF's ``build``; ``dtype`` (an extension) builds for inputs of that dtype, else float32.
        A layer of several inputs takes a list of shapes."""
        if self._definition is not None:
            return  # ``super().build(input_shape)`` inside a custom layer's build
        self._build_on_server(input_shape, dtype)

    def _build_on_server(self, input_shape: Any, dtype: Any = None) -> None:
        shape = [list(s) for s in input_shape] if input_shape and isinstance(input_shape[0], (list, tuple)) \
            else list(input_shape)
        self._send(_routes.build, shape, dtype_name(dtype))

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__call__(inputs, *args, **kwargs)

    def __call__(self, inputs: Any, *args: Any, training: Any = None, **kwargs: Any) -> Any:
        return _routes.outputs(self._send(functools.partial(_routes.apply, training=_training(training)), _inputs(inputs)))

    async def apply_async(self, inputs: Any, training: Any = None, connection: AsyncClient | None = None) -> Any:
        """``apply`` for asyncio programs, over ``connection`` (or a fresh one to the same server)."""
        conn = connection or AsyncClient(self._conn.url, self._conn.graph, self._conn.token, self._conn.binary)
        try:
            result = await conn.request(_routes.apply(self._conn.graph, self._id, _inputs(inputs),
                                                      training=_training(training)))
        finally:
            if connection is None:
                await conn.aclose()
        return _routes.outputs(result)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return tuple(self._send(_routes.compute_output_shape, list(input_shape)).body["output_shape"])

    # ---- losses and updates --------------------------------------------------------
    @property
    def losses(self) -> list[np.generic]:
        return _routes.scalars(self._send(_routes.losses))

    def get_losses_for(self, inputs: Any) -> list[np.generic]:
        return _routes.scalars(self._send(_routes.losses_for, _refs(inputs)))

    @property
    def updates(self) -> list[RemoteUpdate]:
        return _updates(self._send(_routes.updates))

    def get_updates_for(self, inputs: Any) -> list[RemoteUpdate]:
        return _updates(self._send(_routes.updates_for, _refs(inputs)))

    def run_updates(self, inputs: Any = None) -> list[str]:
        """Apply the pending updates of ``inputs`` (all of them when None) to the variables."""
        return _routes.updated_variables(self._send(_routes.run_updates, _refs(inputs)))

    # ---- config --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dict(self._describe()["config"])

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        if cls._class_name == "Layer":  # a custom layer is defined again by its class, as in TF
            return cls(**config)
        conn = default_client()
        layer = object.__new__(cls)
        body = {"class": cls._class_name, "config": dict(config)}
        layer._bind(conn, conn.request(_routes.create_layer(conn.graph, body)).body)
        return layer

    def delete(self) -> None:
        """Remove the layer (and the variables no other layer shares) from the server."""
        self._send(_routes.delete_layer)

    # ---- TF's attributes: named weights (kernel, bias, gamma, ...) and config (units, ...) ----
    def __getattr__(self, attr: str) -> Any:
        """``layer.kernel``, ``layer.moving_mean``: the variable of that name once built (TF's
        AttributeError before); ``layer.units``, ``layer.kernel_size``: the constructor's arguments."""
        prop = getattr(type(self), attr, None)
        if isinstance(prop, property):  # a property that raised AttributeError: let it raise its own
            return prop.__get__(self, type(self))
        if attr.startswith("_") or "_id" not in self.__dict__:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")
        described = self._describe()
        for data in described["variables"]:
            if _short_name(data) == attr:
                return RemoteVariable._from_json(self._conn, self, data)
        config = described["config"]
        if attr in config and attr not in ("name", "trainable", "dtype"):
            return _config_attribute(config[attr])
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")

    def __repr__(self) -> str:
        return f"<layerserve {type(self).__name__} {self._name!r} (id {self._id}, graph {self._conn.graph!r})>"


def _short_name(variable: dict[str, Any]) -> str:
    """``kernel`` for ``dense/kernel:0``; TF's case-unique op names (``Dense/kernel_1:0``) keep the key's."""
    key = variable.get("key") or str(variable["name"]).split(":")[0]
    return str(key).rsplit("/", 1)[-1]


def _config_attribute(value: Any) -> Any:
    """TF keeps tuple arguments (``kernel_size``, ``strides``) as tuples on the layer."""
    if isinstance(value, list) and all(isinstance(v, (int, type(None))) for v in value):
        return tuple(value)
    return value


def _reuse_wire(reuse: Any) -> bool | str | None:
    """``reuse`` of a functional form: True/False/None, or ``tf.compat.v1.AUTO_REUSE`` as ``"auto"``."""
    if reuse is None:
        return None
    return "auto" if is_auto_reuse(reuse) else bool(reuse)


def _training(training: Any) -> bool | None:
    return None if training is None else bool(training)


def _updates(result: Result) -> list[RemoteUpdate]:
    return [RemoteUpdate(variable, value, ref) for variable, value, ref in _routes.updates_of(result)]


def functional(layer: Layer, inputs: Any, training: Any = None) -> Any:
    """Apply a layer made by a functional form once; drop it from the server if that fails."""
    try:
        return layer.apply(inputs, training=training)
    except Exception:
        with contextlib.suppress(Exception):
            layer.delete()
        raise
