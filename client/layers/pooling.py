"""Mirrors ``tf.compat.v1.layers`` pooling: Max/AveragePooling1D/2D/3D and their functional forms.

As in TensorFlow, ``strides`` is required; the functional forms take no other keywords.
"""

from __future__ import annotations

from typing import Any

from layerserve._client import Client
from layerserve.layers.base import Layer, functional

__all__ = [
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "average_pooling1d", "average_pooling2d", "average_pooling3d", "max_pooling1d", "max_pooling2d",
    "max_pooling3d",
]


class _Pooling(Layer):
    def _pool_init(self, pool_size: Any, strides: Any, padding: str, data_format: str, name: str | None,
                   kwargs: dict[str, Any]) -> None:
        super().__init__(name=name, _config=dict(pool_size=pool_size, strides=strides, padding=padding,
                                                 data_format=data_format), **kwargs)


class MaxPooling1D(_Pooling):
    _class_name = "MaxPooling1D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


class MaxPooling2D(_Pooling):
    _class_name = "MaxPooling2D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


class MaxPooling3D(_Pooling):
    _class_name = "MaxPooling3D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


class AveragePooling1D(_Pooling):
    _class_name = "AveragePooling1D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


class AveragePooling2D(_Pooling):
    _class_name = "AveragePooling2D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


class AveragePooling3D(_Pooling):
    _class_name = "AveragePooling3D"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid", data_format: str = "channels_last",
                 name: str | None = None, **kwargs: Any) -> None:
        self._pool_init(pool_size, strides, padding, data_format, name, kwargs)


def max_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None, *,
                  _connection: Client | None = None) -> Any:
    return functional(MaxPooling1D(pool_size, strides, padding, data_format, name, _connection=_connection), inputs)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None, *,
                  _connection: Client | None = None) -> Any:
    return functional(MaxPooling2D(pool_size, strides, padding, data_format, name, _connection=_connection), inputs)


def max_pooling3d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None, *,
                  _connection: Client | None = None) -> Any:
    return functional(MaxPooling3D(pool_size, strides, padding, data_format, name, _connection=_connection), inputs)


def average_pooling1d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None, *,
                      _connection: Client | None = None) -> Any:
    layer = AveragePooling1D(pool_size, strides, padding, data_format, name, _connection=_connection)
    return functional(layer, inputs)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None, *,
                      _connection: Client | None = None) -> Any:
    layer = AveragePooling2D(pool_size, strides, padding, data_format, name, _connection=_connection)
    return functional(layer, inputs)


def average_pooling3d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None, *,
                      _connection: Client | None = None) -> Any:
    layer = AveragePooling3D(pool_size, strides, padding, data_format, name, _connection=_connection)
    return functional(layer, inputs)
