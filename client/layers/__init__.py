"""``layerserve.layers`` mirrors ``tf.compat.v1.layers``: the same classes and functional forms."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from layerserve.layers.base import InputSpec, Layer, RemoteUpdate, RemoteVariable, class_for
from layerserve.layers.convolutional import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    SeparableConv1D,
    SeparableConv2D,
    conv1d,
    conv2d,
    conv2d_transpose,
    conv3d,
    conv3d_transpose,
    separable_conv1d,
    separable_conv2d,
)
from layerserve.layers.core import Dense, Dropout, Flatten, dense, dropout, flatten
from layerserve.layers.normalization import BatchNormalization, batch_normalization
from layerserve.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
    average_pooling1d,
    average_pooling2d,
    average_pooling3d,
    max_pooling1d,
    max_pooling2d,
    max_pooling3d,
)

if TYPE_CHECKING:
    from layerserve._client import Client

__all__ = [
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "BoundLayers", "Conv1D",
    "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "Dense", "Dropout", "Flatten", "InputSpec", "Layer",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "RemoteUpdate", "RemoteVariable", "SeparableConv1D",
    "SeparableConv2D", "average_pooling1d", "average_pooling2d", "average_pooling3d", "batch_normalization",
    "class_for", "conv1d", "conv2d", "conv2d_transpose", "conv3d", "conv3d_transpose", "dense", "dropout",
    "flatten", "max_pooling1d", "max_pooling2d", "max_pooling3d", "separable_conv1d", "separable_conv2d",
]

_CLASSES: dict[str, type[Layer]] = {cls._class_name: cls for cls in (
    Dense, MaxPooling1D, MaxPooling2D, MaxPooling3D, AveragePooling1D, AveragePooling2D, AveragePooling3D,
    BatchNormalization, Dropout, Flatten,
    Conv1D, Conv2D, Conv3D, Conv2DTranspose, Conv3DTranspose, SeparableConv1D, SeparableConv2D,
)}
_FUNCTIONS: dict[str, Any] = {f.__name__: f for f in (
    dense, max_pooling1d, max_pooling2d, max_pooling3d, average_pooling1d, average_pooling2d, average_pooling3d,
    batch_normalization, dropout, flatten,
    conv1d, conv2d, conv3d, conv2d_transpose, conv3d_transpose, separable_conv1d, separable_conv2d,
)}


class BoundLayers:
    """``conn.layers``: the same classes and functions, bound to one connection."""

    def __init__(self, conn: Client) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name in _CLASSES:
            return functools.partial(_CLASSES[name], _connection=self._conn)
        if name in _FUNCTIONS:
            return functools.partial(_FUNCTIONS[name], _connection=self._conn)
        raise AttributeError(f"layerserve.layers has no {name!r}")
