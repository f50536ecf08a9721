"""The layer classes of ``tf.compat.v1.layers``, one module or package per family, and their kit."""

from __future__ import annotations

from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.base import LayerKind
from layerserve.server.layers.conv import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    SeparableConv1D,
    SeparableConv2D,
)
from layerserve.server.layers.custom import CustomLayer
from layerserve.server.layers.dense import Dense
from layerserve.server.layers.dropout import Dropout
from layerserve.server.layers.flatten import Flatten
from layerserve.server.layers.normalization import BatchNormalization
from layerserve.server.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)

__all__ = ["KINDS", "LayerKind", "kind_for"]

KINDS: dict[str, type[LayerKind]] = {cls.class_name: cls for cls in (
    Dense,
    MaxPooling1D, MaxPooling2D, MaxPooling3D, AveragePooling1D, AveragePooling2D, AveragePooling3D,
    BatchNormalization, Dropout, Flatten,
    Conv1D, Conv2D, Conv3D, Conv2DTranspose, Conv3DTranspose, SeparableConv1D, SeparableConv2D,
    CustomLayer,
)}


def kind_for(class_name: object) -> type[LayerKind]:
    if not isinstance(class_name, str) or class_name not in KINDS:
        raise InvalidArgument(f"unknown layer class {class_name!r}; known: {', '.join(sorted(KINDS))}",
                              code="unknown_class")
    return KINDS[class_name]
