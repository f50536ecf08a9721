"""SeparableConv1D, SeparableConv2D: a depthwise convolution (output channel ``c*dm + m`` uses
``depthwise_kernel[..., c, m]``), then a 1x1 convolution with ``pointwise_kernel``, then the
bias and activation. Strides, dilations and padding ('causal' too for 1D) act in the depthwise step.
"""

from __future__ import annotations

import math

import numpy as np

from layerserve.server.errors import IncompatibleInput
from layerserve.server.layers.base import VariableSpec
from layerserve.server.layers.conv.base import GLOROT, ConvBase, Shape, conv_head_params, conv_tail_params
from layerserve.server.layers.conv.ops import NATIVE_DTYPES, gather_patches, onnx_kernel
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import Param, constraint, initializer, positive_int, regularizer

__all__ = ["SeparableConv", "SeparableConv1D", "SeparableConv2D"]


def _separable_params(rank: int) -> tuple[Param, ...]:
    return (*conv_head_params(rank), *conv_tail_params(GLOROT),
            Param("depth_multiplier", 1, positive_int),
            Param("depthwise_initializer", None, initializer),
            Param("pointwise_initializer", None, initializer),
            Param("depthwise_regularizer", None, regularizer),
            Param("pointwise_regularizer", None, regularizer),
            Param("depthwise_constraint", None, constraint),
            Param("pointwise_constraint", None, constraint))


class SeparableConv(ConvBase):
    exact_rank = True
    checks_output_at_build = False  # Keras' separable build skips it; the depthwise op checks
    tf_op = "DepthwiseConv2dNative"

    def check_op(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """TF builds the layer, then its depthwise op (rank 4; 1D inputs get a dim inserted) fails."""
        rank = len(shape) + (1 if self.rank == 1 else 0)
        if rank != 4:
            raise IncompatibleInput(f"Shape must be rank 4 but is rank {rank} for '{self.tf_op}' with input "
                                    f"shapes: [{','.join(str(v) for v in shape)}].")
        super().check_op(shape, dtype, training=training)

    def variable_specs(self, input_shape: Shape, dtype: str) -> list[VariableSpec]:
        c = self.config
        channels = int(input_shape[self.channel_axis()] or 0)
        multiplier = c["depth_multiplier"]
        return [self.weight("depthwise_kernel", (*c["kernel_size"], channels, multiplier), dtype, "depthwise"),
                self.weight("pointwise_kernel", (*[1] * self.rank, channels * multiplier, c["filters"]), dtype,
                            "pointwise"),
                *self.bias_specs(dtype)]

    def runtime_feeds(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        depthwise, pointwise = values["depthwise_kernel"], values["pointwise_kernel"]
        channels, multiplier = depthwise.shape[-2:]
        feeds = dict(values)
        if depthwise.dtype.name in NATIVE_DTYPES:  # a grouped Conv: [C*dm, 1, *k]; then a 1x1 Conv
            feeds["depthwise_kernel"] = onnx_kernel(np.swapaxes(depthwise, -1, -2)).reshape(
                channels * multiplier, 1, *depthwise.shape[:-2])
            feeds["pointwise_kernel"] = onnx_kernel(pointwise)
        else:
            feeds["depthwise_kernel"] = depthwise.reshape(-1, channels, multiplier)
            feeds["pointwise_kernel"] = pointwise.reshape(-1, pointwise.shape[-1])
        return feeds

    def native(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
               dtype: str) -> str:
        c = self.config
        ks, width = list(c["kernel_size"]), channels * c["depth_multiplier"]
        ones = [1] * self.rank
        b.add_input("depthwise_kernel", dtype, [width, 1, *ks])
        b.add_input("pointwise_kernel", dtype, [c["filters"], width, *ones])
        pads = self.pads(spatial)
        depthwise = b.op("Conv", [self.to_first(b, x), "depthwise_kernel"], kernel_shape=ks, group=channels,
                         strides=list(c["strides"]), dilations=list(c["dilation_rate"]),
                         pads=[p[0] for p in pads] + [p[1] for p in pads])
        y = b.op("Conv", [depthwise, "pointwise_kernel", *self.bias_input(b, dtype)], kernel_shape=ones)
        return self.from_first(b, y)

    def gathered(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
                 dtype: str) -> str:
        c = self.config
        multiplier, taps = c["depth_multiplier"], math.prod(c["kernel_size"])
        b.add_input("depthwise_kernel", dtype, [taps, channels, multiplier])
        b.add_input("pointwise_kernel", dtype, [channels * multiplier, c["filters"]])
        patches = gather_patches(b, self.to_last(b, x), self.forward_index(spatial, out), spatial, channels)
        depthwise = b.op("Einsum", [patches, "depthwise_kernel"], equation="npkc,kcm->npcm")
        rows = b.op("Reshape", [depthwise, b.ints([0, math.prod(out), channels * multiplier])])
        return self.project_rows(b, rows, "pointwise_kernel", out, dtype)


class SeparableConv1D(SeparableConv):
    class_name = "SeparableConv1D"
    rank = 1
    causal_ok = True
    params = _separable_params(1)


class SeparableConv2D(SeparableConv):
    class_name = "SeparableConv2D"
    rank = 2
    params = _separable_params(2)
