"""The layer classes of ``tf.compat.v1.layers``, one module per family."""

from __future__ import annotations

from service.errors import InvalidArgument
from service.layers.base import LayerKind
from service.layers.conv import Conv1D, Conv2D, Conv3D
from service.layers.conv_transpose import Conv2DTranspose, Conv3DTranspose
from service.layers.custom import CustomLayer
from service.layers.dense import Dense
from service.layers.dropout import Dropout
from service.layers.flatten import Flatten
from service.layers.normalization import BatchNormalization
from service.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from service.layers.separable_conv import SeparableConv1D, SeparableConv2D

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
