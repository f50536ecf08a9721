"""TensorFlow's convolution arithmetic (layer-api.md §11), per spatial dimension.

Output lengths and paddings for 'valid', 'same' and 'causal', and, for graphs built
without ONNX's Conv (float64), the input position each (output position, kernel tap)
reads: ``-1`` where the tap falls on padding or between the inserted zeros of a
transposed convolution.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "conv_output_length", "conv_pads", "deconv_output_length", "deconv_pad_before", "effective_kernel",
    "conv_positions", "deconv_positions", "gather_index",
]


def effective_kernel(kernel: int, dilation: int) -> int:
    return kernel + (kernel - 1) * (dilation - 1)


def conv_output_length(length: int | None, kernel: int, padding: str, stride: int, dilation: int) -> int | None:
    """Keras' ``conv_output_length``: may be 0 or negative for a kernel larger than the input."""
    if length is None:
        return None
    span = length if padding in ("same", "causal") else length - effective_kernel(kernel, dilation) + 1
    return (span + stride - 1) // stride


def conv_pads(length: int, kernel: int, padding: str, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after): 'same' puts the odd cell at the end; 'causal' pads only before."""
    k = effective_kernel(kernel, dilation)
    if padding == "causal":
        return k - 1, 0
    if padding == "valid":
        return 0, 0
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + k - length, 0)
    return total // 2, total - total // 2


def deconv_output_length(length: int | None, kernel: int, padding: str, stride: int, dilation: int) -> int | None:
    if length is None:
        return None
    k = effective_kernel(kernel, dilation)
    return length * stride + (max(k - stride, 0) if padding == "valid" else 0)


def deconv_pad_before(kernel: int, padding: str, stride: int, dilation: int) -> int:
    """Cells cropped from the start of the full transposed output (the forward conv's pad)."""
    return 0 if padding == "valid" else max(effective_kernel(kernel, dilation) - stride, 0) // 2


def conv_positions(length: int, out: int, kernel: int, stride: int, dilation: int, before: int) -> np.ndarray:
    """``[out, kernel]``: input index read by output o at tap k, ``o*s + k*d - before``."""
    pos = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation - before
    return np.where((pos >= 0) & (pos < length), pos, -1)


def deconv_positions(length: int, out: int, kernel: int, stride: int, dilation: int, before: int) -> np.ndarray:
    """``[out, kernel]``: input i with ``i*s + k*d - before == o`` (no kernel flip), else -1."""
    num = np.arange(out)[:, None] + before - np.arange(kernel)[None, :] * dilation
    pos = num // stride
    return np.where((num % stride == 0) & (pos >= 0) & (pos < length), pos, -1)


def gather_index(positions: list[np.ndarray], spatial: tuple[int, ...]) -> np.ndarray:
    """``[prod(out), prod(kernel)]`` flat input indices; padding reads index ``prod(spatial)``
    (a zero row appended to the input)."""
    n = len(positions)
    flat: np.ndarray = np.zeros([1] * (2 * n), dtype=np.int64)
    valid: np.ndarray = np.ones([1] * (2 * n), dtype=bool)
    for axis, pos in enumerate(positions):
        shape = [1] * (2 * n)
        shape[axis], shape[n + axis] = pos.shape
        pos = pos.reshape(shape)
        flat = flat * spatial[axis] + np.maximum(pos, 0)
        valid = valid & (pos >= 0)
    index = np.where(valid, flat, math.prod(spatial))
    outs = [p.shape[0] for p in positions]
    kernels = [p.shape[1] for p in positions]
    return np.broadcast_to(index, (*outs, *kernels)).reshape(math.prod(outs), math.prod(kernels)).astype(np.int64)
