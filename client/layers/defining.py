"""The custom-layer half of ``Layer``: a subclass that defines ``build`` and ``call`` is recorded
(``layerserve.layers.custom``) once its ``__init__`` has returned, then created on the server."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from layerserve import _routes
from layerserve._client import Client
from layerserve.layers.custom import Definition, Variable, add_loss, add_update, add_weight, define_layer
from layerserve.layers.input_spec import InputSpec

__all__ = ["Definable", "LayerMeta"]


class LayerMeta(type):
    """Creates a custom layer on the server once the subclass's whole ``__init__`` has run."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        layer = super().__call__(*args, **kwargs)
        if getattr(layer, "_pending", None) is not None:
            layer._create_custom()
        return layer


class Definable:
    """What a custom layer needs while it is defined: ``add_weight``, ``add_loss``, ``add_update``."""

    _definition: Definition | None = None  # set while build and call are being recorded
    _pending: dict[str, Any] | None = None  # a custom layer's create arguments, until it is created
    _input_spec_arg: InputSpec | list[InputSpec] | None = None
    batch_separable: ClassVar[bool] = False  # custom layers: declare True when rows are independent
    _conn: Client

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        user_build = cls.__dict__.get("build")
        if user_build is not None:
            cls.build = _server_build_outside_definition(user_build)  # type: ignore[attr-defined]

    def _bind(self, conn: Client, described: dict[str, Any]) -> None:
        raise NotImplementedError

    def _build_on_server(self, input_shape: Any, dtype: Any = None) -> None:
        raise NotImplementedError

    def _create_custom(self) -> None:
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
        self._bind(self._conn, self._conn.request(_routes.create_layer(self._conn.graph, body)).body)

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
                   regularizer: Any = None, trainable: bool | None = None, constraint: Any = None,  # noqa: FBT001 - TF's signature
                   **kwargs: Any) -> Variable:
        """TF's ``add_weight``: a variable ``<scope>/<name>:0`` made when the server builds the layer."""
        if kwargs:
            raise TypeError(f"('Unknown keyword argument:', {sorted(kwargs)[0]!r})")
        if constraint is not None:
            raise TypeError("add_weight: constraints are applied by optimizers, which run in the client's process")
        return add_weight(self, self._defining("add_weight"), name, shape, dtype, initializer, regularizer,
                          trainable=trainable)

    def add_loss(self, losses: Any, inputs: Any = None) -> None:
        """TF's ``add_loss``: a tensor of the inputs (or with ``inputs``) is conditional; one of the
        weights only, or a zero-argument callable, is unconditional (re-evaluated when read)."""
        add_loss(self._defining("add_loss"), losses, inputs)

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        """TF's ``add_update`` with ``layerserve.ops.assign`` / ``moving_average_update``: pending after
        each training apply, applied by ``run_updates``."""
        add_update(self._defining("add_update"), updates)


def _server_build_outside_definition(user_build: Any) -> Any:
    """A subclass's ``build`` records weights while the layer is defined; called later (as
    ``layer.build(shape)``) it builds the layer on the server, as TF's explicit build does."""

    @functools.wraps(user_build)
    def build(self: Definable, input_shape: Any, *args: Any, **kwargs: Any) -> Any:
        if self._definition is None:
            return self._build_on_server(input_shape, *args, **kwargs)
        return user_build(self, input_shape, *args, **kwargs)

    return build
