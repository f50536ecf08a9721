"""MaxPooling and AveragePooling in 1, 2 and 3 dimensions (layer-api.md §2.2, §4, §11).

'same' padding puts any extra cell at the end; average pooling does not count padded cells.
ONNX Runtime's CPU provider has no float64 AveragePool, so float64 average pooling is built
from Gather + ReduceSum over window indices precomputed from the static input shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import Param, data_format, int_tuple, padding

__all__ = [
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "Window",
]


@dataclass(frozen=True)
class Window:
    """One spatial dimension of a pooling window, with TF's padding rules."""

    size: int  # input length
    k: int
    stride: int
    same: bool

    @property
    def out(self) -> int:
        if self.same:
            return -(-self.size // self.stride)
        return (self.size - self.k) // self.stride + 1

    @property
    def pads(self) -> tuple[int, int]:
        """(before, after); TF's extra cell goes at the end (ONNX SAME_UPPER)."""
        if not self.same:
            return 0, 0
        total = max((self.out - 1) * self.stride + self.k - self.size, 0)
        return total // 2, total - total // 2

    def indices(self) -> np.ndarray:
        """[out, k] input indices per window; a padded cell points at ``size`` (a zero slot)."""
        start = np.arange(self.out)[:, None] * self.stride - self.pads[0]
        idx = start + np.arange(self.k)[None, :]
        idx[(idx < 0) | (idx >= self.size)] = self.size
        return idx.astype(np.int64)

    def counts(self) -> np.ndarray:
        counts: np.ndarray = (self.indices() < self.size).sum(axis=1)
        return counts


def _strides(rank: int) -> Any:
    tuple_parser = int_tuple(rank, allow_zero=True)

    def parse(value: Any, name: str) -> list[int]:
        if value is None:
            raise InvalidArgument("Argument `strides` must not be None.", code="missing_argument")
        return tuple_parser(value, name)  # type: ignore[no-any-return]
    return parse


def _conv_output_length(n: int | None, k: int, pad: str, stride: int) -> int | None:
    """Keras' ``conv_output_length``, which pooling's compute_output_shape uses."""
    if n is None:
        return None
    length = n if pad == "same" else n - k + 1
    return (length + stride - 1) // stride


class _Pooling(LayerKind):
    rank: ClassVar[int]
    onnx_op: ClassVar[str]
    tf_op: ClassVar[str]
    dtype_policy = "follow"
    # dtypes TF has no CPU kernel for (3D pooling); rejected before anything runs
    unsupported_dtypes: ClassVar[tuple[str, ...]] = ()

    @property
    def channels_last(self) -> bool:
        return bool(self.config["data_format"] == "channels_last")

    def spatial_axes(self) -> list[int]:
        first = 1 if self.channels_last else 2
        return list(range(first, first + self.rank))

    def windows(self, shape: tuple[int | None, ...]) -> list[Window]:
        same = self.config["padding"] == "same"
        return [Window(int(shape[a]), k, s, same)  # type: ignore[arg-type]
                for a, k, s in zip(self.spatial_axes(), self.config["pool_size"], self.config["strides"], strict=True)]

    # ---- shapes ----------------------------------------------------------------------
    def input_spec(self, build_shape: tuple[int | None, ...] | None) -> InputSpec:
        return InputSpec(ndim=self.rank + 2)

    def check_call(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        if len(shape) != self.rank + 2:
            return  # the input spec reports it
        if dtype in self.unsupported_dtypes:
            raise InvalidArgument(
                f"{self.class_name} cannot run on {dtype} inputs: TensorFlow has no {dtype} CPU kernel for "
                f"{self.tf_op} (it computes 3D pooling in float32 only); cast the input to float32",
                code="unsupported_dtype", exception="TypeError")
        if any(s <= 0 for s in self.config["strides"]):
            raise InvalidArgument(f"Strides must be > 0 for {self.tf_op}, got strides={tuple(self.config['strides'])}",
                                  code="invalid_argument")

    def check_op(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        """TF builds the layer, then its pooling op refuses a 'valid' window longer than the input
        (1D pooling runs as 2D, on the input with a dim of 1 inserted after the length)."""
        shown = list(shape)
        if self.rank == 1:
            shown.insert(2 if self.channels_last else 3, 1)
        for w in self.windows(shape):
            if not w.same and w.size < w.k:
                raise IncompatibleInput(f"Negative dimension size caused by subtracting {w.k} from {w.size} for "
                                        f"'{self.tf_op}' with input shapes: [{','.join(map(str, shown))}].")

    def work_per_output(self, input_shape: tuple[int, ...]) -> int:
        return int(math.prod(self.config["pool_size"]))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        if len(input_shape) != self.rank + 2:
            raise InvalidArgument(f"{self.class_name} expects an input shape of rank {self.rank + 2}, "
                                  f"got {list(input_shape)}", code="incompatible_input")
        if any(s <= 0 for s in self.config["strides"]):
            raise InvalidArgument("Strides must be > 0", code="invalid_argument")
        out = list(input_shape)
        for a, k, s in zip(self.spatial_axes(), self.config["pool_size"], self.config["strides"], strict=True):
            out[a] = _conv_output_length(input_shape[a], k, self.config["padding"], s)
        return tuple(out)

    # ---- graph -----------------------------------------------------------------------
    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        if self.onnx_op == "AveragePool" and sig.dtype == "float64":
            return GraphOutputs(self._gathered_average(b, x, sig))
        return GraphOutputs(self._onnx_pool(b, x, sig))

    def _onnx_pool(self, b: GraphBuilder, x: str, sig: Signature) -> str:
        n = self.rank
        windows = self.windows(sig.shape)
        if self.channels_last:  # ONNX pools channels-first
            x = b.op("Transpose", [x], perm=[0, n + 1, *range(1, n + 1)])
        attrs: dict[str, Any] = {
            "kernel_shape": [w.k for w in windows], "strides": [w.stride for w in windows],
            "pads": [w.pads[0] for w in windows] + [w.pads[1] for w in windows]}
        if self.onnx_op == "AveragePool":
            attrs["count_include_pad"] = 0
        y = b.op(self.onnx_op, [x], **attrs)
        if self.channels_last:
            y = b.op("Transpose", [y], perm=[0, *range(2, n + 2), 1])
        return y

    def _gathered_average(self, b: GraphBuilder, x: str, sig: Signature) -> str:
        """Window sums one spatial axis at a time, divided by the count of real cells."""
        windows, axes = self.windows(sig.shape), self.spatial_axes()
        full_rank = self.rank + 2
        if any(w.pads != (0, 0) for w in windows):  # one zero cell at the end of each spatial axis
            pads = [0] * (2 * full_rank)
            for a in axes:
                pads[full_rank + a] = 1
            x = b.op("Pad", [x, b.ints(pads)])
        for a, w in zip(axes, windows, strict=True):
            gathered = b.op("Gather", [x, b.const(w.indices(), "int64", "window")], axis=a)
            x = b.op("ReduceSum", [gathered, b.ints([a + 1])], keepdims=0)
        count = np.ones((), dtype=np.float64)
        for w in windows:
            count = np.multiply.outer(count, w.counts().astype(np.float64))
        if self.channels_last:
            count = count[..., None]
        return b.op("Div", [x, b.const(count, "float64", "count")])

    # ---- config ----------------------------------------------------------------------
    def get_config(self, dtype: str | None, build_shape: tuple[int | None, ...] | None) -> dict[str, Any]:
        keys = (("strides", "pool_size", "padding", "data_format") if self.rank == 1
                else ("pool_size", "padding", "strides", "data_format"))
        return {k: self.config_value(k, self.config[k]) for k in keys}


def _params(rank: int) -> tuple[Param, ...]:
    return (
        Param("pool_size", parse=int_tuple(rank)),
        Param("strides", parse=_strides(rank)),
        Param("padding", "valid", padding(("valid", "same"))),
        Param("data_format", "channels_last", data_format),
    )


class MaxPooling1D(_Pooling):
    class_name, rank, onnx_op, tf_op = "MaxPooling1D", 1, "MaxPool", "MaxPool"
    params = _params(1)


class MaxPooling2D(_Pooling):
    class_name, rank, onnx_op, tf_op = "MaxPooling2D", 2, "MaxPool", "MaxPool"
    params = _params(2)


class MaxPooling3D(_Pooling):
    class_name, rank, onnx_op, tf_op = "MaxPooling3D", 3, "MaxPool", "MaxPool3D"
    params = _params(3)
    unsupported_dtypes = ("float16", "float64")


class AveragePooling1D(_Pooling):
    class_name, rank, onnx_op, tf_op = "AveragePooling1D", 1, "AveragePool", "AvgPool"
    params = _params(1)


class AveragePooling2D(_Pooling):
    class_name, rank, onnx_op, tf_op = "AveragePooling2D", 2, "AveragePool", "AvgPool"
    params = _params(2)


class AveragePooling3D(_Pooling):
    class_name, rank, onnx_op, tf_op = "AveragePooling3D", 3, "AveragePool", "AvgPool3D"
    params = _params(3)
    unsupported_dtypes = ("float16", "float64")
