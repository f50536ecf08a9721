"""Mirrors ``tf.compat.v1.layers`` normalization: BatchNormalization and ``batch_normalization``.

``renorm``, ``virtual_batch_size`` and ``adjustment`` are refused by the server (422).
"""

from __future__ import annotations

from typing import Any

from layerserve._client import Client
from layerserve.initializers import Ones, Zeros
from layerserve.layers.base import Layer, functional

__all__ = ["BatchNormalization", "batch_normalization"]


class BatchNormalization(Layer):
    _class_name = "BatchNormalization"

    def __init__(self, axis: int | list[int] = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = Zeros(),
                 gamma_initializer: Any = Ones(), moving_mean_initializer: Any = Zeros(),
                 moving_variance_initializer: Any = Ones(), beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None, gamma_constraint: Any = None,
                 renorm: bool = False, renorm_clipping: Any = None, renorm_momentum: float = 0.99,
                 fused: bool | None = None, trainable: bool = True, virtual_batch_size: int | None = None,
                 adjustment: Any = None, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, _config=dict(
            axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
            beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer, moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer, beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint, renorm=renorm, renorm_clipping=renorm_clipping,
            renorm_momentum=renorm_momentum, fused=fused, virtual_batch_size=virtual_batch_size,
            adjustment=adjustment), **kwargs)


def batch_normalization(inputs: Any, axis: int | list[int] = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                        center: bool = True, scale: bool = True, beta_initializer: Any = Zeros(),
                        gamma_initializer: Any = Ones(), moving_mean_initializer: Any = Zeros(),
                        moving_variance_initializer: Any = Ones(), beta_regularizer: Any = None,
                        gamma_regularizer: Any = None, beta_constraint: Any = None, gamma_constraint: Any = None,
                        training: Any = False, trainable: bool = True, name: str | None = None,
                        reuse: bool | None = None, renorm: bool = False, renorm_clipping: Any = None,
                        renorm_momentum: float = 0.99, fused: bool | None = None,
                        virtual_batch_size: int | None = None, adjustment: Any = None, *,
                        _connection: Client | None = None) -> Any:
    layer = BatchNormalization(
        axis, momentum, epsilon, center, scale, beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint,
        renorm, renorm_clipping, renorm_momentum, fused, trainable, virtual_batch_size, adjustment, name=name,
        _connection=_connection, _scope=name, _reuse=reuse)
    return functional(layer, inputs, training=training)
