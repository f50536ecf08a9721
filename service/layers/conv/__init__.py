"""The convolutions: plain (1-3D), transposed (2-3D) and separable (1-2D), on one shared base."""

from __future__ import annotations

from layerserve.server.layers.conv.convolution import Conv1D, Conv2D, Conv3D
from layerserve.server.layers.conv.separable import SeparableConv1D, SeparableConv2D
from layerserve.server.layers.conv.transpose import Conv2DTranspose, Conv3DTranspose

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D"]
