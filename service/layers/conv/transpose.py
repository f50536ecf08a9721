"""Conv2DTranspose, Conv3DTranspose: ``full[i*s + k*d] += x[i] @ W[k]^T`` (no kernel flip),
kernel ``[*k, filters, in]``, cropped or zero-extended to TF's output size: 'same' gives
``in*s``, 'valid' ``in*s + max(k - s, 0)`` (layer-api.md §2.2, §11).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import VariableSpec
from layerserve.server.layers.conv.base import ConvBase, Shape, conv_head_params, conv_tail_params
from layerserve.server.layers.conv.geometry import (
    deconv_output_length,
    deconv_pad_before,
    deconv_positions,
    gather_index,
)
from layerserve.server.layers.conv.ops import NATIVE_DTYPES, gather_patches, onnx_kernel
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import Param

__all__ = ["Conv2DTranspose", "Conv3DTranspose", "ConvTranspose"]


def _output_padding(value: Any, name: str) -> None:
    if value is not None:
        raise InvalidArgument(f"Argument `output_padding` is not supported by layerserve (only None); "
                              f"received output_padding={value}", code="unsupported_argument")
    return None


class ConvTranspose(ConvBase):
    exact_rank = True
    rank_checked_at_build = True
    checks_output_at_build = False  # its output is never shorter than its input

    def check_op(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """Every input length gives an output: nothing for the op to refuse."""

    def dtype_error(self, layer_dtype: str, input_dtype: str) -> str:
        """TF's transposes run ``Conv{2,3}DBackpropInput``, which names the input last."""
        return (f"Input 'out_backprop' of '{self.tf_op}' Op has type {input_dtype} that does not match type "
                f"{layer_dtype} of argument 'filter'.")
    uses_dilation = True  # Keras' Conv3DTranspose accepts dilation_rate but ignores it

    def dilations(self) -> list[int]:
        return list(self.config["dilation_rate"]) if self.uses_dilation else [1] * self.rank

    def check_build_shape(self, shape: Shape) -> None:
        rates = self.dilations()
        if len(set(rates)) > 1:  # TF's atrous transpose takes one rate
            raise InvalidArgument(f"Expected the {self.rank} dimensions of the `dilation_rate` argument to be equal "
                                  f"to each other. Received: dilation_rate={tuple(rates)}")
        if len(shape) == self.rank + 2 and shape[self.channel_axis()] is None:
            raise IncompatibleInput(
                f"The channel dimension of the inputs to `{self.class_name}` should be defined. The input_shape "
                f"received is {tuple(shape)}, where axis {self.channel_axis()} (0-based) is the channel dimension, "
                "which found to be `None`.")
        super().check_build_shape(shape)

    def variable_specs(self, input_shape: Shape, dtype: str) -> list[VariableSpec]:
        channels = int(input_shape[self.channel_axis()] or 0)
        kernel = (*self.config["kernel_size"], self.config["filters"], channels)
        return [self.weight("kernel", kernel, dtype, "kernel"), *self.bias_specs(dtype)]

    def spatial_output(self, spatial: Shape) -> Shape:
        c = self.config
        return tuple(deconv_output_length(n, k, c["padding"], s, d) for n, k, s, d in
                     zip(spatial, c["kernel_size"], c["strides"], self.dilations(), strict=True))

    def pads_before(self) -> list[int]:
        c = self.config
        return [deconv_pad_before(k, c["padding"], s, d) for k, s, d in
                zip(c["kernel_size"], c["strides"], self.dilations(), strict=True)]

    def runtime_feeds(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kernel = values["kernel"]
        feeds = dict(values)
        if kernel.dtype.name in NATIVE_DTYPES:
            feeds["kernel"] = onnx_kernel(kernel)
        else:  # [*k, out, in] -> [K*in, out], matching the gathered patches' order
            feeds["kernel"] = np.swapaxes(kernel, -1, -2).reshape(-1, kernel.shape[-2])
        return feeds

    def native(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
               dtype: str) -> str:
        c = self.config
        ks, strides, rates = list(c["kernel_size"]), list(c["strides"]), self.dilations()
        b.add_input("kernel", dtype, [channels, c["filters"], *ks])
        before = self.pads_before()
        # ONNX's length is (in-1)*s + (k-1)*d + 1 + output_padding - pads; TF's may be longer (k < s).
        extra = [o + p - (n - 1) * s - (k - 1) * d - 1
                 for o, p, n, s, k, d in zip(out, before, spatial, strides, ks, rates, strict=True)]
        y = b.op("ConvTranspose", [self.to_first(b, x), "kernel", *self.bias_input(b, dtype)], kernel_shape=ks,
                 strides=strides, dilations=rates, pads=before + [max(-e, 0) for e in extra],
                 output_padding=[max(e, 0) for e in extra])
        return self.from_first(b, y)

    def gathered(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
                 dtype: str) -> str:
        c = self.config
        positions = [deconv_positions(n, o, k, s, d, p) for n, o, k, s, d, p in
                     zip(spatial, out, c["kernel_size"], c["strides"], self.dilations(), self.pads_before(),
                         strict=True)]
        width = math.prod(c["kernel_size"]) * channels
        b.add_input("kernel", dtype, [width, c["filters"]])
        patches = gather_patches(b, self.to_last(b, x), gather_index(positions, spatial), spatial, channels)
        rows = b.op("Reshape", [patches, b.ints([0, math.prod(out), width])])
        return self.project_rows(b, rows, "kernel", out, dtype)


class Conv2DTranspose(ConvTranspose):
    class_name = "Conv2DTranspose"
    rank = 2
    tf_op = "Conv2DBackpropInput"
    params = (*conv_head_params(2), *conv_tail_params(), Param("output_padding", None, _output_padding))


class Conv3DTranspose(ConvTranspose):
    class_name = "Conv3DTranspose"
    rank = 3
    tf_op = "Conv3DBackpropInputV2"
    uses_dilation = False
    params = (*conv_head_params(3), *conv_tail_params(), Param("output_padding", None, _output_padding))

    def get_config(self, dtype: str | None, build_shape: Shape | None) -> dict[str, Any]:
        config = super().get_config(dtype, build_shape)
        config.pop("dilation_rate")  # as Keras' Conv3DTranspose reports it
        return config
