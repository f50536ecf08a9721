"""What every convolution layer shares (Keras' ``Conv`` base): its arguments and TF's
construction errors, input_spec, output shapes, and the graph frame around the convolution
(extra leading batch dimensions, empty outputs, activation).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import numpy as np

from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature, VariableSpec
from layerserve.server.layers.conv.geometry import (
    conv_output_length,
    conv_pads,
    conv_positions,
    effective_kernel,
    gather_index,
)
from layerserve.server.layers.conv.ops import NATIVE_DTYPES, from_channels_first, to_channels_first, zeros_like_batch
from layerserve.server.layers.kit.activations import apply_activation
from layerserve.server.layers.kit.initializers import Initializer
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import (
    Param,
    data_format,
    int_tuple,
    kernel_bias_params,
    padding,
    positive_int,
)

__all__ = ["ConvBase", "Shape", "conv_head_params", "conv_tail_params", "known"]

Shape = tuple[int | None, ...]
GLOROT = {"class_name": "GlorotUniform", "config": {"seed": None}}


def known(shape: Shape) -> tuple[int, ...]:
    """A shape whose dims are all known (graphs are compiled for concrete input shapes)."""
    if any(d is None for d in shape):
        raise IncompatibleInput(f"a concrete shape is needed here, got {_shape_text(shape)}")
    return cast(tuple[int, ...], shape)


def _groups(value: Any, name: str) -> int:
    """Keras takes ``groups or 1``; grouped convolutions are not implemented."""
    if value in (None, 0, 1) and not isinstance(value, bool):
        return 1
    raise InvalidArgument(f"Argument `groups` is not supported by layerserve (only groups=1); received groups={value}",
                          code="unsupported_argument")


def conv_head_params(rank: int) -> tuple[Param, ...]:
    ones = [1] * rank
    return (
        Param("filters", parse=positive_int),
        Param("kernel_size", parse=int_tuple(rank)),
        Param("strides", ones, int_tuple(rank, allow_zero=True)),
        Param("padding", "valid", padding(("valid", "same", "causal"))),
        Param("data_format", "channels_last", data_format),
        Param("dilation_rate", ones, int_tuple(rank)),
        Param("groups", 1, _groups),
    )


conv_tail_params = kernel_bias_params  # after the conv-specific head, the block Dense has too


def _as_tuple(values: list[int]) -> tuple[int, ...]:
    return tuple(values)


class ConvBase(LayerKind):
    rank: ClassVar[int]
    dtype_policy = "strict"
    causal_ok: ClassVar[bool] = False  # Conv1D and SeparableConv1D only
    exact_rank: ClassVar[bool] = False  # transposes and separables: ndim=N+2 once built
    rank_checked_at_build: ClassVar[bool] = False  # transposes: "Inputs should have rank N+2"
    checks_output_at_build: ClassVar[bool] = True  # Conv1D/2D/3D: output lengths < 0 fail the build
    tf_op: ClassVar[str] = "Conv2D"  # the TF op the layer runs, as TF's op errors name it

    # ---- arguments -------------------------------------------------------------------
    def validate(self) -> None:
        c = self.config
        if 0 in c["strides"]:
            raise InvalidArgument(f"The argument `strides` cannot contains 0(s). Received: {_as_tuple(c['strides'])}")
        if c["padding"] == "causal" and not self.causal_ok:
            raise InvalidArgument("Causal padding is only supported for `Conv1D`and `SeparableConv1D`.")
        if max(c["strides"]) > 1 and max(c["dilation_rate"]) > 1:
            raise InvalidArgument("`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                                  f"strides={_as_tuple(c['strides'])} and "
                                  f"dilation_rate={_as_tuple(c['dilation_rate'])}")

    @property
    def channels_last(self) -> bool:
        return bool(self.config["data_format"] == "channels_last")

    def channel_axis(self) -> int:
        return -1 if self.channels_last else -1 - self.rank

    # ---- shapes ----------------------------------------------------------------------
    def input_spec(self, build_shape: Shape | None) -> InputSpec:
        if build_shape is None:
            return InputSpec(min_ndim=self.rank + 2)
        axes = {self.channel_axis(): int(build_shape[self.channel_axis()] or 0)}
        if self.exact_rank:
            return InputSpec(ndim=self.rank + 2, axes=axes)
        return InputSpec(min_ndim=self.rank + 2, axes=axes)

    def check_build_shape(self, shape: Shape) -> None:
        self._check_rank(shape)
        axis = self.channel_axis()
        if shape[axis] is None:
            raise IncompatibleInput(
                f"The channel dimension of the inputs should be defined. The input_shape received is "
                f"{_shape_text(shape)}, where axis {axis} (0-based) is the channel dimension, which found to be "
                "`None`.")
        if self.checks_output_at_build:  # Keras' Conv.build calls compute_output_shape
            self.compute_output_shape(shape)

    def check_op(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """The convolution op's shape checks: a 'valid' window longer than the input fails
        (TF's graph mode knows the static shape), even where Keras' output length is 0."""
        lead = len(shape) - self.rank - 1
        spatial, _ = self.split(shape[lead:])
        c = self.config
        for n, k, d in zip(spatial, c["kernel_size"], c["dilation_rate"], strict=True):
            if c["padding"] == "valid" and n is not None and n < effective_kernel(k, d):
                # dilated convolutions run on space-to-batch input, n/d cells long
                raise IncompatibleInput(f"Negative dimension size caused by subtracting {k} from "
                                        f"{-(-n // d)} for '{self.tf_op}' with input shapes: "
                                        f"[{','.join(str(v) for v in shape)}].")

    def dtype_error(self, layer_dtype: str, input_dtype: str) -> str:
        return (f"Input 'filter' of '{self.tf_op}' Op has type {layer_dtype} that does not match type "
                f"{input_dtype} of argument 'input'.")

    def _check_rank(self, shape: Shape) -> None:
        if self.rank_checked_at_build and len(shape) != self.rank + 2:
            raise IncompatibleInput(f"Inputs should have rank {self.rank + 2}. "
                                    f"Received input_shape={_shape_text(shape)}.")

    def split(self, core: Shape) -> tuple[Shape, int | None]:
        """``core`` (one batch dim dropped): (spatial dims, channels)."""
        return (core[:-1], core[-1]) if self.channels_last else (core[1:], core[0])

    def spatial_output(self, spatial: Shape) -> Shape:
        """A forward convolution's; the transposes override it."""
        c = self.config
        return tuple(conv_output_length(n, k, c["padding"], s, d) for n, k, s, d in
                     zip(spatial, c["kernel_size"], c["strides"], c["dilation_rate"], strict=True))

    def pads(self, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        """(before, after) per spatial dim of a forward convolution."""
        c = self.config
        return [conv_pads(n, k, c["padding"], s, d) for n, k, s, d in
                zip(spatial, c["kernel_size"], c["strides"], c["dilation_rate"], strict=True)]

    def forward_index(self, spatial: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
        """The float64 path's gather index of a forward convolution."""
        c = self.config
        positions = [conv_positions(n, o, k, s, d, p[0]) for n, o, k, s, d, p in
                     zip(spatial, out, c["kernel_size"], c["strides"], c["dilation_rate"], self.pads(spatial),
                         strict=True)]
        return gather_index(positions, spatial)

    def static_split(self, core: tuple[int, ...]) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
        """(spatial dims, channels, output spatial dims) of a concrete ``core``."""
        spatial, channels = self.split(core)
        return known(spatial), int(channels or 0), known(self.spatial_output(spatial))

    def work_per_output(self, input_shape: tuple[int, ...]) -> int:
        """The kernel's window times the input channels (an upper bound for the separable and
        transposed forms)."""
        channels = input_shape[-1] if self.channels_last else input_shape[1]
        return int(math.prod(self.config["kernel_size"])) * channels

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check_rank(input_shape)
        batch_rank = len(input_shape) - self.rank - 1
        if batch_rank < 0:
            raise IncompatibleInput(f"expected an input of rank >= {self.rank + 1}, "
                                    f"got {_shape_text(input_shape)}")
        lead = input_shape[:batch_rank]
        out = self.spatial_output(self.split(input_shape[batch_rank:])[0])
        if any(d is not None and d < 0 for d in out):
            raise IncompatibleInput(
                f"One of the dimensions in the output is <= 0 due to downsampling in {self.layer_name}. Consider "
                f"increasing the input size. Received input shape {_shape_text(input_shape, list)} which would "
                "produce output shape with a zero or negative value in a dimension.")
        filters = self.config["filters"]
        return (*lead, *out, filters) if self.channels_last else (*lead, filters, *out)

    # ---- variables -------------------------------------------------------------------
    def weight(self, name: str, shape: tuple[int, ...], dtype: str, prefix: str) -> VariableSpec:
        init = self.initializer(f"{prefix}_initializer") or Initializer("GlorotUniform", {"seed": None})
        return VariableSpec(name, shape, dtype, trainable=True, initializer=init,
                            regularizer=self.regularizer(f"{prefix}_regularizer"))

    def bias_specs(self, dtype: str) -> list[VariableSpec]:
        if not self.config["use_bias"]:
            return []
        return [VariableSpec("bias", (self.config["filters"],), dtype, trainable=True,
                             initializer=self.initializer("bias_initializer"),
                             regularizer=self.regularizer("bias_regularizer"))]

    # ---- graph -----------------------------------------------------------------------
    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        lead = len(sig.shape) - self.rank - 1
        core = tuple(sig.shape[lead:])
        if lead > 1:  # extra leading batch dims fold into one
            x = b.op("Reshape", [x, b.ints([-1, *core])])
        out = known(self.compute_output_shape((None, *core))[1:])
        if 0 in out:  # TF gives an empty output there; ONNX's Conv refuses it
            empty = {v.name: np.zeros(v.shape, sig.dtype) for v in sig.variables}
            for name, value in self.runtime_feeds(empty).items():  # still fed by the runtime
                b.add_input(name, sig.dtype, list(value.shape))
            y = zeros_like_batch(b, x, out, sig.dtype)
        else:
            y = self.convolve(b, x, core, sig)
        if lead > 1:
            y = b.op("Reshape", [y, b.ints([-1, *sig.shape[1:lead], *out])])
        return GraphOutputs(apply_activation(b, y, self.config["activation"], sig.dtype))

    def convolve(self, b: GraphBuilder, x: str, core: tuple[int, ...], sig: Signature) -> str:
        """``x`` is ``[N, *core]`` in the layer's data_format; the result (bias added) too. ONNX
        Runtime's own convolution where it has a kernel for the dtype, else gathered patches."""
        spatial, channels, out = self.static_split(core)
        if sig.dtype in NATIVE_DTYPES:
            return self.native(b, x, spatial, channels, out, sig.dtype)
        return self.gathered(b, x, spatial, channels, out, sig.dtype)

    def native(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
               dtype: str) -> str:
        """The convolution as ONNX's Conv or ConvTranspose."""
        raise NotImplementedError

    def gathered(self, b: GraphBuilder, x: str, spatial: tuple[int, ...], channels: int, out: tuple[int, ...],
                 dtype: str) -> str:
        """The convolution as gathered patches and a MatMul (dtypes without a Conv kernel)."""
        raise NotImplementedError

    def project_rows(self, b: GraphBuilder, rows: str, kernel: str, out: tuple[int, ...], dtype: str) -> str:
        """Patch rows ``[N, P, width]`` times ``kernel`` ``[width, filters]``, plus the bias, in the
        layer's output layout ``[N, *out, filters]`` (or channels first)."""
        y = self.add_bias(b, b.op("MatMul", [rows, kernel]), dtype)
        return self.from_last(b, b.op("Reshape", [y, b.ints([0, *out, self.config["filters"]])]))

    def bias_input(self, b: GraphBuilder, dtype: str) -> list[str]:
        if not self.config["use_bias"]:
            return []
        return [b.add_input("bias", dtype, [self.config["filters"]])]

    def add_bias(self, b: GraphBuilder, y: str, dtype: str) -> str:
        bias = self.bias_input(b, dtype)
        return b.op("Add", [y, bias[0]]) if bias else y

    def to_first(self, b: GraphBuilder, x: str) -> str:
        """Layer layout -> channels first (what ONNX's Conv takes)."""
        return to_channels_first(b, x, self.rank) if self.channels_last else x

    def from_first(self, b: GraphBuilder, y: str) -> str:
        return from_channels_first(b, y, self.rank) if self.channels_last else y

    def to_last(self, b: GraphBuilder, x: str) -> str:
        """Layer layout -> channels last (what the gathered float64 path takes)."""
        return x if self.channels_last else from_channels_first(b, x, self.rank)

    def from_last(self, b: GraphBuilder, y: str) -> str:
        return y if self.channels_last else to_channels_first(b, y, self.rank)


def _shape_text(shape: Shape, kind: type = tuple) -> str:
    return str(kind(shape))
