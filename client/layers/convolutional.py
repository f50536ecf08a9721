"""Mirrors ``tf.compat.v1.layers`` convolutional layers: the classes and their functional forms,
with TensorFlow's argument names, order and defaults. Kernels keep TF's layouts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layerserve.initializers import Zeros
from layerserve.layers.base import Layer, functional

if TYPE_CHECKING:
    from layerserve._client import Client

__all__ = [
    "Conv1D", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
    "conv1d", "conv2d", "conv2d_transpose", "conv3d", "conv3d_transpose", "separable_conv1d", "separable_conv2d",
]

Ints = Any  # an int or a tuple of ints, as TF takes them


class _Conv(Layer):
    def __init__(self, filters: int, kernel_size: Ints, strides: Ints, padding: str, data_format: str,
                 dilation_rate: Ints, activation: Any, use_bias: bool, kernel_initializer: Any,
                 bias_initializer: Any, kernel_regularizer: Any, bias_regularizer: Any, activity_regularizer: Any,
                 kernel_constraint: Any, bias_constraint: Any, trainable: bool, name: str | None,
                 **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, _config=dict(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint), **kwargs)


class Conv1D(_Conv):
    _class_name = "Conv1D"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = 1, padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Ints = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, trainable, name, **kwargs)


class Conv2D(_Conv):
    _class_name = "Conv2D"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Ints = (1, 1), activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, trainable, name, **kwargs)


class Conv3D(_Conv):
    _class_name = "Conv3D"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = (1, 1, 1), padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Ints = (1, 1, 1), activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, trainable, name, **kwargs)


class _ConvTranspose(Layer):
    """TF's transposes list no ``dilation_rate``; it still reaches the server through ``**kwargs``."""

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints, padding: str, data_format: str,
                 activation: Any, use_bias: bool, kernel_initializer: Any, bias_initializer: Any,
                 kernel_regularizer: Any, bias_regularizer: Any, activity_regularizer: Any, kernel_constraint: Any,
                 bias_constraint: Any, trainable: bool, name: str | None, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, _config=dict(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding, data_format=data_format,
            activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint), **kwargs)


class Conv2DTranspose(_ConvTranspose):
    _class_name = "Conv2DTranspose"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
                 data_format: str = "channels_last", activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = Zeros(), kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, trainable, name, **kwargs)


class Conv3DTranspose(_ConvTranspose):
    _class_name = "Conv3DTranspose"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = (1, 1, 1), padding: str = "valid",
                 data_format: str = "channels_last", activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = Zeros(), kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, trainable, name, **kwargs)


class _SeparableConv(Layer):
    def __init__(self, filters: int, kernel_size: Ints, strides: Ints, padding: str, data_format: str,
                 dilation_rate: Ints, depth_multiplier: int, activation: Any, use_bias: bool,
                 depthwise_initializer: Any, pointwise_initializer: Any, bias_initializer: Any,
                 depthwise_regularizer: Any, pointwise_regularizer: Any, bias_regularizer: Any,
                 activity_regularizer: Any, depthwise_constraint: Any, pointwise_constraint: Any,
                 bias_constraint: Any, trainable: bool, name: str | None, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, _config=dict(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, depth_multiplier=depth_multiplier, activation=activation,
            use_bias=use_bias, depthwise_initializer=depthwise_initializer,
            pointwise_initializer=pointwise_initializer, bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer, pointwise_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint, pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint), **kwargs)


class SeparableConv1D(_SeparableConv):
    _class_name = "SeparableConv1D"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = 1, padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Ints = 1, depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = None,
                 pointwise_initializer: Any = None, bias_initializer: Any = Zeros(),
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None,
                 pointwise_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                         activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
                         depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer,
                         depthwise_constraint, pointwise_constraint, bias_constraint, trainable, name, **kwargs)


class SeparableConv2D(_SeparableConv):
    _class_name = "SeparableConv2D"

    def __init__(self, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
                 data_format: str = "channels_last", dilation_rate: Ints = (1, 1), depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = None,
                 pointwise_initializer: Any = None, bias_initializer: Any = Zeros(),
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None,
                 pointwise_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                         activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
                         depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer,
                         depthwise_constraint, pointwise_constraint, bias_constraint, trainable, name, **kwargs)


# ---- functional forms: build a layer, apply it once, return only the output --------------
def _private(connection: Client | None, name: str | None, reuse: bool | None) -> dict[str, Any]:
    return {"_connection": connection, "_scope": name, "_reuse": reuse}


def conv1d(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = 1, padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Ints = 1, activation: Any = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
           kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
           kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
           name: str | None = None, reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = Conv1D(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                   kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
                   kernel_constraint, bias_constraint, trainable, name, **_private(_connection, name, reuse))
    return functional(layer, inputs)


def conv2d(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Ints = (1, 1), activation: Any = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
           kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
           kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
           name: str | None = None, reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = Conv2D(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                   kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
                   kernel_constraint, bias_constraint, trainable, name, **_private(_connection, name, reuse))
    return functional(layer, inputs)


def conv3d(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = (1, 1, 1), padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Ints = (1, 1, 1), activation: Any = None,
           use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
           kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
           kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
           name: str | None = None, reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = Conv3D(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                   kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
                   kernel_constraint, bias_constraint, trainable, name, **_private(_connection, name, reuse))
    return functional(layer, inputs)


def conv2d_transpose(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
                     data_format: str = "channels_last", activation: Any = None, use_bias: bool = True,
                     kernel_initializer: Any = None, bias_initializer: Any = Zeros(), kernel_regularizer: Any = None,
                     bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                     bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                     reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = Conv2DTranspose(filters, kernel_size, strides, padding, data_format, activation, use_bias,
                            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                            activity_regularizer, kernel_constraint, bias_constraint, trainable, name,
                            **_private(_connection, name, reuse))
    return functional(layer, inputs)


def conv3d_transpose(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = (1, 1, 1),
                     padding: str = "valid", data_format: str = "channels_last", activation: Any = None,
                     use_bias: bool = True, kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                     kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                     kernel_constraint: Any = None, bias_constraint: Any = None, trainable: bool = True,
                     name: str | None = None, reuse: bool | None = None, *,
                     _connection: Client | None = None) -> Any:
    layer = Conv3DTranspose(filters, kernel_size, strides, padding, data_format, activation, use_bias,
                            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                            activity_regularizer, kernel_constraint, bias_constraint, trainable, name,
                            **_private(_connection, name, reuse))
    return functional(layer, inputs)


def separable_conv1d(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = 1, padding: str = "valid",
                     data_format: str = "channels_last", dilation_rate: Ints = 1, depth_multiplier: int = 1,
                     activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = None,
                     pointwise_initializer: Any = None, bias_initializer: Any = Zeros(),
                     depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                     bias_regularizer: Any = None, activity_regularizer: Any = None,
                     depthwise_constraint: Any = None, pointwise_constraint: Any = None,
                     bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                     reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = SeparableConv1D(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                            activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
                            depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer,
                            depthwise_constraint, pointwise_constraint, bias_constraint, trainable, name,
                            **_private(_connection, name, reuse))
    return functional(layer, inputs)


def separable_conv2d(inputs: Any, filters: int, kernel_size: Ints, strides: Ints = (1, 1), padding: str = "valid",
                     data_format: str = "channels_last", dilation_rate: Ints = (1, 1), depth_multiplier: int = 1,
                     activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = None,
                     pointwise_initializer: Any = None, bias_initializer: Any = Zeros(),
                     depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                     bias_regularizer: Any = None, activity_regularizer: Any = None,
                     depthwise_constraint: Any = None, pointwise_constraint: Any = None,
                     bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                     reuse: bool | None = None, *, _connection: Client | None = None) -> Any:
    layer = SeparableConv2D(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                            activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
                            depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer,
                            depthwise_constraint, pointwise_constraint, bias_constraint, trainable, name,
                            **_private(_connection, name, reuse))
    return functional(layer, inputs)
