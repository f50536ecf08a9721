"""Mirrors ``tf.compat.v1.layers`` core layers: Dense, Dropout, Flatten and their functional forms."""

from __future__ import annotations

from typing import Any

from layerserve._client import Client
from layerserve.initializers import Zeros
from layerserve.layers.base import Layer, functional

__all__ = ["Dense", "Dropout", "Flatten", "dense", "dropout", "flatten"]


class Dense(Layer):
    _class_name = "Dense"

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True, kernel_initializer: Any = None,
                 bias_initializer: Any = Zeros(), kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 trainable: bool = True, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, _config=dict(
            units=units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint), **kwargs)


def dense(inputs: Any, units: int, activation: Any = None, use_bias: bool = True, kernel_initializer: Any = None,
          bias_initializer: Any = Zeros(), kernel_regularizer: Any = None, bias_regularizer: Any = None,
          activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
          trainable: bool = True, name: str | None = None, reuse: bool | None = None, *,
          _connection: Client | None = None) -> Any:
    layer = Dense(units, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                  bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, trainable=trainable,
                  name=name, _scope=name, _reuse=reuse, _connection=_connection)
    return functional(layer, inputs)


class Dropout(Layer):
    """``training`` (default False) is given per call: ``layer(x, training=True)``."""

    _class_name = "Dropout"

    def __init__(self, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, _config=dict(rate=rate, noise_shape=noise_shape, seed=seed), **kwargs)


class Flatten(Layer):
    _class_name = "Flatten"

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(_config=dict(data_format=data_format), **kwargs)


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None, training: Any = False,
            name: str | None = None, *, _connection: Client | None = None) -> Any:
    return functional(Dropout(rate, noise_shape, seed, name, _connection=_connection), inputs, training=training)


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last", *,
            _connection: Client | None = None) -> Any:
    return functional(Flatten(data_format, name=name, _connection=_connection), inputs)
