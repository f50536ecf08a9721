"""Custom layers (``class: "Layer"``): TF's base Layer with its computation given as ONNX."""

from __future__ import annotations

from layerserve.server.layers.custom.layer import CustomLayer

__all__ = ["CustomLayer"]
