"""Conv1D, Conv2D, Conv3D: ``activation(conv(x, kernel) + bias)``, kernel ``[*k, in, filters]``.

Paddings 'valid', 'same' (the odd cell at the end) and 'causal' (Conv1D: all before), with
strides, dilations and either data_format. Inputs may carry extra leading batch dims.
"""

from __future__ import annotations

import math

import numpy as np

from layerserve.server.layers.base import VariableSpec
from layerserve.server.layers.conv.base import ConvBase, Shape, conv_head_params, conv_tail_params
from layerserve.server.layers.conv.ops import NATIVE_DTYPES, gather_patches, onnx_kernel
from layerserve.server.layers.kit.onnx_graph import GraphBuilder

__all__ = ["Conv", "Conv1D", "Conv2D", "Conv3D"]


class Conv(ConvBase):
    def variable_specs(self, input_shape: Shape, dtype: str) -> list[VariableSpec]:
        channels = int(input_shape[self.channel_axis()] or 0)
        kernel = (*self.config["kernel_size"], channels, self.config["filters"])
        return [self.weight("kernel", kernel, dtype, "kernel"), *self.bias_specs(dtype)]

    def runtime_feeds(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kernel = values["kernel"]
        feeds = dict(values)
        if kernel.dtype.name in NATIVE_DTYPES:
            feeds["kernel"] = onnx_kernel(kernel)
        else:  # [*k, in, out] -> [K*in, out], matching the gathered patches' order
            feeds["kernel"] = kernel.reshape(-1, kernel.shape[-1])
        return feeds

    def native(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
               dtype: str) -> str:
        c = self.config
        ks = list(c["kernel_size"])
        b.add_input("kernel", dtype, [c["filters"], channels, *ks])
        pads = self.pads(spatial)
        y = b.op("Conv", [self.to_first(b, x), "kernel", *self.bias_input(b, dtype)], kernel_shape=ks,
                 strides=list(c["strides"]), dilations=list(c["dilation_rate"]),
                 pads=[p[0] for p in pads] + [p[1] for p in pads])
        return self.from_first(b, y)

    def gathered(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
                 dtype: str) -> str:
        c = self.config
        width = math.prod(c["kernel_size"]) * channels
        b.add_input("kernel", dtype, [width, c["filters"]])
        patches = gather_patches(b, self.to_last(b, x), self.forward_index(spatial, out), spatial, channels)
        rows = b.op("Reshape", [patches, b.ints([0, math.prod(out), width])])
        return self.project_rows(b, rows, "kernel", out, dtype)


class Conv1D(Conv):
    class_name = "Conv1D"
    rank = 1
    causal_ok = True
    params = conv_head_params(1) + conv_tail_params()


class Conv2D(Conv):
    class_name = "Conv2D"
    rank = 2
    params = conv_head_params(2) + conv_tail_params()


class Conv3D(Conv):
    class_name = "Conv3D"
    rank = 3
    tf_op = "Conv3D"
    params = conv_head_params(3) + conv_tail_params()
