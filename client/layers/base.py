"""The remote ``Layer``: TensorFlow's legacy Layer API, executed by a layerserve server.

A layer is created on the server when it is constructed (so ``name`` is TF's ``dense_1``);
every property reads the server's current state, so several processes may share a layer.
A subclass that defines ``call`` is a custom layer: once its ``__init__`` has returned, its
``build`` and ``call`` are recorded (``layerserve.layers.custom``) and the server creates it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from layerserve._core import Result, layer_path
from layerserve._foreign import is_auto_reuse
from layerserve._serialize import dtype_name, to_wire
from layerserve.connection import AsyncConnection, Connection, get_default_connection
from layerserve.protocol import input_ref

if TYPE_CHECKING:
    from collections.abc import Sequence

    from layerserve.layers.custom import Definition, Variable

__all__ = ["InputSpec", "Layer", "RemoteUpdate", "RemoteVariable", "TensorShape"]


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

    def _to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("ndim", "min_ndim", "max_ndim", "dtype")
                               if getattr(self, k) is not None}
        if self.axes:
            out["axes"] = {str(k): v for k, v in self.axes.items()}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out


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

    def __init__(self, conn: Connection, layer: Layer | None, name: str, shape: tuple[int, ...], dtype: str,
                 trainable: bool) -> None:
        self._conn, self._layer = conn, layer
        self.name, self.shape, self.dtype, self.trainable = name, TensorShape(shape), dtype, trainable

    @classmethod
    def _from_json(cls, conn: Connection, layer: Layer | None, data: dict[str, Any]) -> RemoteVariable:
        return cls(conn, layer, data["name"], tuple(data["shape"]), data["dtype"], data["trainable"])

    def numpy(self) -> np.ndarray:
        result = self._conn.call("GET", f"/v1/graphs/{self._conn.graph}/variables/{self.name}",
                                 accept_tensors=True, tensor_key="values")
        return result.tensors[0].copy()

    def value(self) -> np.ndarray:
        return self.numpy()

    def read_value(self) -> np.ndarray:
        return self.numpy()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    def assign(self, value: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:
        """Set the variable's value on the server (shape and dtype as TF checks them); returns the
        variable, as TF's eager ``assign`` does, or None when ``read_value=False``."""
        from layerserve.layers._assign import assign_variable

        assign_variable(self, np.asarray(value))
        return self if read_value else None

    def assign_add(self, delta: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:
        return self.assign(self.numpy() + np.asarray(delta, dtype=self.dtype), read_value=read_value)

    def assign_sub(self, delta: Any, use_locking: Any = None, name: Any = None, read_value: bool = True) -> Any:
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


class _LayerMeta(type):
    """Creates a custom layer on the server once the subclass's whole ``__init__`` has run."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        layer = super().__call__(*args, **kwargs)
        if getattr(layer, "_pending", None) is not None:
            layer._create_custom()
        return layer


class Layer(metaclass=_LayerMeta):
    """Base class of the remote layers, with TF's ``Layer(trainable, name, dtype, **kwargs)``.

    Subclass it as in TF1: create weights in ``build(input_shape)`` with ``add_weight``,
    compute in ``call(inputs, training=None)`` with ``layerserve.ops``, register ``add_loss`` and
    ``add_update``. See the README's custom-layer example.
    """

    _class_name: ClassVar[str] = "Layer"
    _definition: Definition | None = None  # set while build and call are being recorded
    _pending: dict[str, Any] | None = None  # a custom layer's create arguments, until it is created
    batch_separable: ClassVar[bool] = False  # custom layers: declare True when rows are independent

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        user_build = cls.__dict__.get("build")
        if user_build is not None:
            cls.build = _server_build_outside_definition(user_build)  # type: ignore[method-assign]

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None, *,
                 _connection: Connection | None = None, _scope: str | None = None, _reuse: bool | None = None,
                 _config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        conn = _connection or get_default_connection()
        if self._class_name == "Layer":  # a custom layer: created when __init__ returns
            unknown = set(kwargs) - {"activity_regularizer"}
            if unknown:
                raise TypeError(f"('Keyword argument not understood:', {sorted(unknown)[0]!r})")
            self._conn = conn
            self._input_spec_arg: InputSpec | list[InputSpec] | None = None
            self._pending = {"trainable": trainable, "name": name, "dtype": dtype_name(dtype),
                             "activity_regularizer": to_wire(kwargs.get("activity_regularizer"), "activity_regularizer")}
            return
        config = {k: to_wire(v, k) for k, v in {**(_config or {}), **kwargs}.items()}
        body = {"class": self._class_name, "name": name, "trainable": trainable, "dtype": dtype_name(dtype),
                "config": config, "scope": _scope, "reuse": _reuse_wire(_reuse)}
        described = conn.call("POST", f"/v1/graphs/{conn.graph}/layers", body).body
        self._bind(conn, described)

    def _create_custom(self) -> None:
        from layerserve.layers.custom import define_layer

        pending, self._pending = self._pending or {}, None
        specs = self._input_spec_arg
        spec_list: list[InputSpec | None] = list(specs) if isinstance(specs, list) else [specs]
        config, _ = define_layer(self, pending["dtype"] or "float32", spec_list)
        config.update(class_name=type(self).__name__, batch_separable=bool(self.batch_separable),
                      activity_regularizer=pending["activity_regularizer"],
                      input_spec=None if specs is None else
                      [s._to_json() for s in specs] if isinstance(specs, list) else specs._to_json())
        body = {"class": "Layer", "name": pending["name"], "trainable": pending["trainable"],
                "dtype": pending["dtype"], "config": config}
        self._bind(self._conn, self._conn.call("POST", f"/v1/graphs/{self._conn.graph}/layers", body).body)

    # ---- defining a custom layer (inside build and call) ----------------------------
    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Override in a custom layer; runs once, on symbolic tensors, when the layer is defined.
        TF's base ``Layer`` returns its inputs, and so does ``layerserve.layers.Layer()``."""
        return inputs

    def _defining(self, what: str) -> Definition:
        if self._definition is None:
            raise RuntimeError(f"{what} is available inside build() and call() of a custom layer while it is "
                               "being defined (at construction)")
        return self._definition

    def add_weight(self, name: str, shape: Sequence[Any] | None = None, dtype: Any = None, initializer: Any = None,
                   regularizer: Any = None, trainable: bool | None = None, constraint: Any = None,
                   **kwargs: Any) -> Variable:
        """TF's ``add_weight``: a variable ``<scope>/<name>:0`` made when the server builds the layer."""
        from layerserve.layers.custom import add_weight

        if kwargs:
            raise TypeError(f"('Unknown keyword argument:', {sorted(kwargs)[0]!r})")
        if constraint is not None:
            raise TypeError("add_weight: constraints are applied by optimizers, which run in the client's process")
        return add_weight(self, self._defining("add_weight"), name, shape, dtype, initializer, regularizer, trainable)

    def add_loss(self, losses: Any, inputs: Any = None) -> None:
        """TF's ``add_loss``: a tensor of the inputs (or with ``inputs``) is conditional; one of the
        weights only, or a zero-argument callable, is unconditional (re-evaluated when read)."""
        from layerserve.layers.custom import add_loss

        add_loss(self._defining("add_loss"), losses, inputs)

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        """TF's ``add_update`` with ``layerserve.ops.assign`` / ``moving_average_update``: pending after
        each training apply, applied by ``run_updates``."""
        from layerserve.layers.custom import add_update

        add_update(self._defining("add_update"), updates)

    def _bind(self, conn: Connection, described: dict[str, Any]) -> None:
        self._conn = conn
        self._id: str = described["id"]
        self._name: str = described["name"]

    @classmethod
    def _from_description(cls, conn: Connection, described: dict[str, Any]) -> Layer:
        from layerserve.layers import class_for

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
        self._call("PATCH", body={"trainable": bool(value)})

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
        return [t.copy() for t in self._call("GET", "/weights", accept_tensors=True, tensor_key="weights").tensors]

    def set_weights(self, weights: Sequence[Any]) -> None:
        arrays = [np.asarray(w) for w in weights]
        self._call("PUT", "/weights", {}, tensors=arrays, request_key="weights")

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
        shape = [list(s) for s in input_shape] if input_shape and isinstance(input_shape[0], (list, tuple)) \
            else list(input_shape)
        self._call("POST", "/build", {"input_shape": shape, "dtype": dtype_name(dtype)})

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
        if cls._class_name == "Layer":  # a custom layer is defined again by its class, as in TF
            return cls(**config)
        conn = get_default_connection()
        layer = object.__new__(cls)
        body = {"class": cls._class_name, "config": dict(config)}
        layer._bind(conn, conn.call("POST", f"/v1/graphs/{conn.graph}/layers", body).body)
        return layer

    def delete(self) -> None:
        """Remove the layer (and the variables no other layer shares) from the server."""
        self._call("DELETE")

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


def _server_build_outside_definition(user_build: Any) -> Any:
    """A subclass's ``build`` records weights while the layer is defined; called later (as
    ``layer.build(shape)``) it builds the layer on the server, as TF's explicit build does."""

    @functools.wraps(user_build)
    def build(self: Layer, input_shape: Any, *args: Any, **kwargs: Any) -> Any:
        if self._definition is None:
            return Layer.build(self, input_shape, *args, **kwargs)
        return user_build(self, input_shape, *args, **kwargs)

    return build


def _reuse_wire(reuse: Any) -> bool | str | None:
    """``reuse`` of a functional form: True/False/None, or ``tf.compat.v1.AUTO_REUSE`` as ``"auto"``."""
    if reuse is None:
        return None
    return "auto" if is_auto_reuse(reuse) else bool(reuse)


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
