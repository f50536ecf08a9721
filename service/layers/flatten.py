"""Flatten: ``[batch, ...] -> [batch, prod(...)]`` in channels-last element order (layer-api.md §11)."""

from __future__ import annotations

import math
from typing import Any

from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import Param, data_format

__all__ = ["Flatten"]


class Flatten(LayerKind):
    class_name = "Flatten"
    dtype_policy = "follow"
    params = (Param("data_format", None, data_format),)  # None means channels_last

    def input_spec(self, build_shape: tuple[int | None, ...] | None) -> InputSpec:
        return InputSpec(min_ndim=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Keras' rule: an unknown (or zero) non-batch dim gives None."""
        rest = input_shape[1:]
        if all(rest):
            return input_shape[0], math.prod(rest)  # type: ignore[arg-type]
        return input_shape[0], None

    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        rank = len(sig.shape)
        if rank == 1:
            return GraphOutputs(b.op("Unsqueeze", [x, b.ints([1])]))
        if self.config["data_format"] == "channels_first":  # to channels-last element order first
            x = b.op("Transpose", [x], perm=[0, *range(2, rank), 1])
        # 0 copies the (dynamic) batch dim, so an empty batch works too
        return GraphOutputs(b.op("Reshape", [x, b.ints([0, math.prod(sig.shape[1:])])]))

    def get_config(self, dtype: str | None, build_shape: tuple[int | None, ...] | None) -> dict[str, Any]:
        return {"data_format": self.config["data_format"]}
