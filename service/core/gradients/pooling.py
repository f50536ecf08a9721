"""Gradients of MaxPool (tiled windows: through the first maximum of each window; others
through the forward node's Indices output), AveragePool (a depthwise ConvTranspose
with a constant kernel, divided by each window's count first) and the global poolings."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from layerserve.server.core.gradients.convolution import Geometry, geometry
from layerserve.server.core.gradients.errors import UnsupportedGradient
from layerserve.server.core.gradients.info import np_dtype
from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


@rule("MaxPool")
def _max_pool(n: NodeGrad) -> Grads:
    """Each output's gradient goes to its window's first maximum (row-major), as TF's
    MaxPoolGrad: the same cell ONNX Runtime's Indices name."""
    if int(n.attr("storage_order", 0)) != 0:
        raise UnsupportedGradient("MaxPool(storage_order=1)", n.node.name)
    shape, out = n.shape(n.inp(0)), n.shape(n.out())
    kernel = [int(k) for k in n.attr("kernel_shape")]
    geo = geometry(n, list(shape[2:]), kernel)
    tiled = (geo.strides == kernel and not any(geo.begin + geo.end) and set(geo.dilations) == {1}
             and all(o * k <= length for o, k, length in zip(out[2:], kernel, shape[2:], strict=True))
             and math.prod(kernel) <= 16 and n.elem() in (TensorProto.FLOAT, TensorProto.DOUBLE))
    return [_tiled_max_pool(n, shape, list(out[2:]), kernel) if tiled else _scattered_max_pool(n)]


def _tiled_max_pool(n: NodeGrad, shape: tuple[int, ...], out: list[int], kernel: list[int]) -> str:
    """Windows that tile the input: each window's cells side by side (``[windows, cells]``), and
    per cell the windows whose maximum it is and no earlier cell's was take the gradient. Much
    cheaper in ONNX Runtime than MaxPool's Indices and a scatter, or than ArgMax and a one-hot
    mask (it broadcasts along a trailing axis of a few cells slowly). Cells past the last whole
    window get none."""
    em, r = n.em, len(kernel)
    covered = [o * k for o, k in zip(out, kernel, strict=True)]
    cells, windows = math.prod(kernel), math.prod(shape[:2]) * math.prod(out)
    x = n.inp(0)
    if covered != list(shape[2:]):
        x = em.op("Slice", [x, em.ints([0] * r), em.ints(covered), em.ints(list(range(2, 2 + r)))])
    split = [v for o, k in zip(out, kernel, strict=True) for v in (o, k)]  # [N, C, o1, k1, o2, k2, ...]
    grouped = em.op("Transpose", [em.reshape(x, [*shape[:2], *split])],
                    perm=[0, 1, *range(2, 2 + 2 * r, 2), *range(3, 3 + 2 * r, 2)])  # [N, C, o1, o2, ..., k1, k2, ...]
    peak, g = em.reshape(n.out(), [windows, 1]), em.reshape(n.g, [windows, 1])
    taken: str | None = None
    shares = []
    for cell in em.op_multi("Split", [em.reshape(grouped, [windows, cells]), em.ints([1] * cells)], cells, axis=1):
        hit = em.op("Equal", [cell, peak])
        first = hit if taken is None else em.op("And", [hit, em.op("Not", [taken])])
        taken = hit if taken is None else em.op("Or", [taken, hit])
        shares.append(em.op("Mul", [em.op("Cast", [first], to=n.elem()), g]))
    spread = em.op("Concat", shares, axis=1) if len(shares) > 1 else shares[0]
    back = em.op("Transpose", [em.reshape(spread, [*shape[:2], *out, *kernel])],
                 perm=[0, 1, *(a for i in range(r) for a in (2 + i, 2 + r + i))])
    grad = em.reshape(back, [*shape[:2], *covered])
    if covered == list(shape[2:]):
        return grad
    return em.op("Pad", [grad, em.ints([0, 0] + [0] * r + [0, 0] + [s - c for s, c in zip(shape[2:], covered, strict=True)])])


def _scattered_max_pool(n: NodeGrad) -> str:
    """Each output's gradient goes to the input cell its Indices name (an output the forward
    node gains when it has none); cells taken by several windows sum."""
    em, node = n.em, n.node
    if len(node.output) < 2 or not node.output[1]:
        del node.output[1:]
        node.output.append(em.fresh("maxpool_indices"))
    shape = n.shape(n.inp(0))
    work = TensorProto.FLOAT if n.elem() == TensorProto.FLOAT16 else n.elem()  # no float16 scatter-add
    flat = em.zeros([math.prod(shape)], work)
    updates = em.cast(em.reshape(n.g, [-1]), work, n.elem())
    scattered = em.op("ScatterElements", [flat, em.reshape(node.output[1], [-1]), updates], axis=0,
                      reduction="add")
    return em.cast(em.reshape(scattered, shape), n.elem(), work)


def _window_counts(spatial: list[int], out: list[int], geo: Geometry, *, include_pad: bool) -> np.ndarray:
    """Per output position, how many cells its window averages over."""
    total = np.ones((), dtype=np.float64)
    for length, o, k, s, b, e in zip(spatial, out, geo.kernel, geo.strides, geo.begin, geo.end, strict=True):
        start = np.arange(o) * s - b
        stop = start + k
        low, high = (-b, length + e) if include_pad else (0, length)
        count = np.clip(np.minimum(stop, high) - np.maximum(start, low), 0, None)
        total = np.multiply.outer(total, count.astype(np.float64))
    return total


@rule("AveragePool")
def _average_pool(n: NodeGrad) -> Grads:
    em, x = n.em, n.inp(0)
    shape = n.shape(x)
    spatial, out = list(shape[2:]), list(n.shape(n.out())[2:])
    geo = geometry(n, spatial, [int(k) for k in n.attr("kernel_shape")])
    if any(d != 1 for d in geo.dilations):
        raise UnsupportedGradient("AveragePool(dilations)", n.node.name)
    counts = _window_counts(spatial, out, geo, include_pad=bool(n.attr("count_include_pad", 0)))
    share = em.op("Div", [n.g, em.const(counts.astype(np_dtype(n.elem())))])
    channels = shape[1]
    ones = em.const(np.ones((channels, 1, *geo.kernel), dtype=np_dtype(n.elem())))
    full = em.op("ConvTranspose", [share, ones], group=channels, kernel_shape=geo.kernel, strides=geo.strides)
    # ``full`` covers input positions -begin ... -begin + (o-1)*s + k - 1: crop or extend to the input
    ends = [length - ((o - 1) * s + k - b) for length, o, s, k, b in
            zip(spatial, out, geo.strides, geo.kernel, geo.begin, strict=True)]
    pads = [0, 0, *[-b for b in geo.begin], 0, 0, *ends]
    return [em.op("Pad", [full, em.ints(pads)]) if any(pads) else full]


@rule("GlobalAveragePool")
def _global_average_pool(n: NodeGrad) -> Grads:
    shape = n.shape(n.inp(0))
    share = n.em.op("Mul", [n.g, n.scalar(1.0 / max(math.prod(shape[2:]), 1))])
    return [n.em.op("Expand", [share, n.em.ints(shape)])]


@rule("GlobalMaxPool")
def _global_max_pool(n: NodeGrad) -> Grads:
    em, x = n.em, n.inp(0)
    axes = list(range(2, n.info.rank(x)))
    hit = em.op("Cast", [em.op("Equal", [x, n.out()])], to=n.elem())
    count = em.reduce_sum(hit, axes, keepdims=True)
    return [em.op("Mul", [em.op("Div", [hit, count]), n.g])]
