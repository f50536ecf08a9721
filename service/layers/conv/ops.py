"""ONNX building blocks shared by the convolution layers.

float16 and float32 graphs use ONNX's Conv/ConvTranspose (channels first). ONNX Runtime's
CPU provider has no float64 Conv, so float64 graphs gather each output position's receptive
field with precomputed indices (the input shape is static per compiled graph) and contract
it with MatMul/Einsum, which exist in float64: TF's float64 precision is kept.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from layerserve.server.layers.kit.onnx_graph import GraphBuilder, onnx_dtype

__all__ = [
    "NATIVE_DTYPES", "from_channels_first", "gather_patches", "onnx_kernel", "to_channels_first", "zeros_like_batch",
]

NATIVE_DTYPES = ("float16", "float32")


def to_channels_first(b: GraphBuilder, x: str, rank: int) -> str:
    """``[N, *spatial, C]`` -> ``[N, C, *spatial]``."""
    return b.op("Transpose", [x], perm=[0, rank + 1, *range(1, rank + 1)])


def from_channels_first(b: GraphBuilder, x: str, rank: int) -> str:
    """``[N, C, *spatial]`` -> ``[N, *spatial, C]``."""
    return b.op("Transpose", [x], perm=[0, *range(2, rank + 2), 1])


def gather_patches(b: GraphBuilder, x: str, index: np.ndarray, spatial: tuple[int, ...], channels: int) -> str:
    """``[N, *spatial, C]`` -> ``[N, P, K, C]``: the input cells each of P output positions reads
    through each of K kernel taps; ``index`` value ``prod(spatial)`` reads a zero row."""
    size = int(np.prod(spatial))
    rows = b.op("Reshape", [x, b.ints([0, size, channels])])
    padded = b.op("Pad", [rows, b.ints([0, 0, 0, 0, 1, 0])])
    return b.op("Gather", [padded, b.const(index, "int64", "index")], axis=1)


def zeros_like_batch(b: GraphBuilder, x: str, tail: tuple[int, ...], dtype: str) -> str:
    """Zeros of shape ``[N, *tail]`` (an empty output when ``tail`` holds a 0)."""
    batch = b.op("Slice", [b.op("Shape", [x]), b.ints([0]), b.ints([1])])
    shape = b.op("Concat", [batch, b.ints(list(tail))], axis=0)
    return b.op("ConstantOfShape", [shape], value=helper.make_tensor("zero", onnx_dtype(dtype), [1], [0]))


def onnx_kernel(kernel: np.ndarray) -> np.ndarray:
    """TF ``[*k, a, b]`` -> ONNX ``[b, a, *k]``: Conv's ``[out, in, *k]`` from ``[*k, in, out]``,
    ConvTranspose's ``[in, out, *k]`` from ``[*k, out, in]``."""
    n = kernel.ndim - 2
    return np.ascontiguousarray(np.transpose(kernel, (n + 1, n, *range(n))))
