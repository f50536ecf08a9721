"""Gradients of Conv and ConvTranspose, in ONNX's own convolutions (channels first).

A convolution's input gradient is the transposed convolution of the output gradient with the
same kernel (and the other way round); its kernel gradient is a convolution whose batch and
channel axes are swapped: the input (batch = input channels) convolved with the output
gradient as the kernel, stride and dilation trading places. Groups (depthwise) keep each group's
channels apart by folding the group into the channel axis. That convolution's kernel is as large
as the output, which ONNX Runtime runs slowly; an ungrouped Conv whose input is small enough
gets its kernel gradient as one Gemm of the output gradient with the input's cells under each
tap instead (strided slices of the padded input).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from onnx import TensorProto

from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__ = ["Geometry", "geometry"]


@dataclass(frozen=True)
class Geometry:
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    begin: list[int]
    end: list[int]

    def conv_attrs(self) -> dict[str, list[int]]:
        return {"kernel_shape": self.kernel, "strides": self.strides, "dilations": self.dilations,
                "pads": self.begin + self.end}


def geometry(n: NodeGrad, spatial: list[int], kernel: list[int], *, transposed: bool = False) -> Geometry:
    """Kernel, strides, dilations and explicit pads of a Conv, ConvTranspose or pooling node
    (auto_pad and ConvTranspose's output_shape resolved as the ONNX spec says)."""
    r = len(spatial)
    strides = [int(v) for v in n.attr("strides", [1] * r)]
    dilations = [int(v) for v in n.attr("dilations", [1] * r)]
    pads = [int(v) for v in n.attr("pads", [0] * (2 * r))]
    auto = n.attr("auto_pad", "NOTSET")
    out = list(n.shape(n.out())[2:])
    if auto in ("SAME_UPPER", "SAME_LOWER") or (transposed and n.attr("output_shape") is not None):
        pads = _auto_pads(spatial, out, kernel, strides, dilations, n, auto, transposed=transposed)
    elif auto == "VALID":
        pads = [0] * (2 * r)
    return Geometry(kernel, strides, dilations, pads[:r], pads[r:])


def _auto_pads(spatial: list[int], out: list[int], kernel: list[int], strides: list[int], dilations: list[int],
               n: NodeGrad, auto: str, *, transposed: bool) -> list[int]:
    begin: list[int] = []
    end: list[int] = []
    for length, o, k, s, d in zip(spatial, out, kernel, strides, dilations, strict=True):
        span = (k - 1) * d + 1
        if transposed:
            extra = [int(v) for v in n.attr("output_padding", [0] * len(spatial))][len(begin)]
            total = s * (length - 1) + extra + span - o
        else:
            total = max((o - 1) * s + span - length, 0)
        small, large = total // 2, total - total // 2
        upper = auto == "SAME_UPPER"
        begin.append(small if upper else large)
        end.append(large if upper else small)
    return begin + end


def _fold_groups(n: NodeGrad, x: str, shape: tuple[int, ...], groups: int) -> str:
    """``[B, G*c, *S]`` -> ``[c, G*B, *S]``: channel ``g*c + i`` of batch ``b`` becomes batch ``i``,
    channel ``g*B + b`` (a grouped convolution over it keeps the groups apart)."""
    b, channels, rest = shape[0], shape[1], list(shape[2:])
    per = channels // groups
    r = len(rest)
    x = n.em.reshape(x, [b, groups, per, *rest])
    x = n.em.op("Transpose", [x], perm=[2, 1, 0, *range(3, 3 + r)])
    return n.em.reshape(x, [per, groups * b, *rest])


def _swap01(n: NodeGrad, x: str, rank: int) -> str:
    return n.em.op("Transpose", [x], perm=[1, 0, *range(2, rank)])


def _crop(n: NodeGrad, x: str, have: list[int], want: list[int]) -> str:
    """Keep the first ``want`` cells of each spatial axis (axes 2...)."""
    if have == want:
        return x
    axes = list(range(2, 2 + len(want)))
    return n.em.op("Slice", [x, n.em.ints([0] * len(want)), n.em.ints(want), n.em.ints(axes)])


def _kernel_gradient(n: NodeGrad, source: tuple[str, tuple[int, ...]], kernel: tuple[str, tuple[int, ...]],
                     geo: Geometry, groups: int) -> str:
    """The kernel's gradient: a Conv of ``source`` (batch and channels swapped, groups folded)
    with ``kernel`` (batch and channels swapped), stride and dilation trading places. For Conv
    the source is the input and the kernel the output gradient; for ConvTranspose the reverse."""
    (data, data_shape), (weights, weights_shape) = source, kernel
    folded = _fold_groups(n, data, data_shape, groups)
    swapped = _swap01(n, weights, len(weights_shape))
    taps = list(weights_shape[2:])
    got = [(length + b + e - ((t - 1) * s + 1)) // d + 1 for length, b, e, t, s, d in
           zip(data_shape[2:], geo.begin, geo.end, taps, geo.strides, geo.dilations, strict=True)]
    conv = n.em.op("Conv", [folded, swapped], kernel_shape=taps, strides=geo.dilations, dilations=geo.strides,
                   pads=geo.begin + geo.end, group=groups)
    return _swap01(n, _crop(n, conv, got, geo.kernel), len(geo.kernel) + 2)


# The tap slices of the input are held at once: at most this many elements (and taps) for a Gemm.
PATCH_ELEMENTS = 1 << 23
PATCH_TAPS = 64


def _patches_fit(n: NodeGrad, xs: tuple[int, ...], geo: Geometry, groups: int) -> bool:
    taps = math.prod(geo.kernel)
    out = n.shape(n.out())[2:]
    return (groups == 1 and taps <= PATCH_TAPS and n.elem() in (TensorProto.FLOAT, TensorProto.DOUBLE)
            and taps * xs[0] * xs[1] * math.prod(out) <= PATCH_ELEMENTS)


def _patch_kernel_gradient(n: NodeGrad, x: str, xs: tuple[int, ...], geo: Geometry) -> str:
    """``dW[o, c, t] = sum over batch b and output cell p of g[b, o, p] * x[b, c, p*s + t*d]``:
    per tap ``t`` a strided slice of the padded input (batch and channels swapped), all taps
    stacked as ``[C*T, B*P]``, and one Gemm with the output gradient as ``[O, B*P]``."""
    em, r = n.em, len(geo.kernel)
    out = list(n.shape(n.out())[2:])
    channels, positions = xs[1], xs[0] * math.prod(out)
    data = _swap01(n, x, r + 2)
    if any(geo.begin + geo.end):
        data = em.op("Pad", [data, em.ints([0, 0, *geo.begin, 0, 0, *geo.end])])
    axes, steps = em.ints(list(range(2, 2 + r))), em.ints(geo.strides)
    taps = []
    for tap in itertools.product(*(range(k) for k in geo.kernel)):
        starts = [t * d for t, d in zip(tap, geo.dilations, strict=True)]
        ends = [start + (o - 1) * s + 1 for start, o, s in zip(starts, out, geo.strides, strict=True)]
        cells = em.op("Slice", [data, em.ints(starts), em.ints(ends), axes, steps])
        taps.append(em.reshape(cells, [channels, 1, positions]))
    stacked = em.op("Concat", taps, axis=1) if len(taps) > 1 else taps[0]
    patches = em.reshape(stacked, [channels * len(taps), positions])
    grad = em.reshape(_swap01(n, n.g, r + 2), [n.shape(n.out())[1], positions])
    return em.reshape(em.op("Gemm", [grad, patches], transB=1), [n.shape(n.out())[1], channels, *geo.kernel])


def _bias_gradient(n: NodeGrad) -> str:
    shape = n.shape(n.out())
    return n.em.reduce_sum(n.g, [0, *range(2, len(shape))], keepdims=False, shape=shape, elem=n.elem())


@rule("Conv")
def _conv(n: NodeGrad) -> Grads:
    x, w = n.inp(0), n.inp(1)
    xs, ws = n.shape(x), n.shape(w)
    geo = geometry(n, list(xs[2:]), list(ws[2:]))
    groups = int(n.attr("group", 1))
    grads: Grads = [None, None, None]
    if n.want(0):
        out = n.shape(n.out())[2:]
        extra = [length - ((o - 1) * s + (k - 1) * d + 1 - b - e) for length, o, s, k, d, b, e in
                 zip(xs[2:], out, geo.strides, geo.kernel, geo.dilations, geo.begin, geo.end, strict=True)]
        grads[0] = n.em.op("ConvTranspose", [n.g, w], group=groups, output_padding=extra, **geo.conv_attrs())
    if n.want(1):
        grads[1] = (_patch_kernel_gradient(n, x, xs, geo) if _patches_fit(n, xs, geo, groups)
                    else _kernel_gradient(n, (x, xs), (n.g, n.shape(n.out())), geo, groups))
    if n.want(2):
        grads[2] = _bias_gradient(n)
    return grads


@rule("ConvTranspose")
def _conv_transpose(n: NodeGrad) -> Grads:
    x, w = n.inp(0), n.inp(1)
    xs, ws = n.shape(x), n.shape(w)
    geo = geometry(n, list(xs[2:]), list(ws[2:]), transposed=True)
    groups = int(n.attr("group", 1))
    grads: Grads = [None, None, None]
    if n.want(0):
        conv = n.em.op("Conv", [n.g, w], group=groups, **geo.conv_attrs())
        out = n.shape(n.out())[2:]
        got = [(o + b + e - ((k - 1) * d + 1)) // s + 1 for o, b, e, k, d, s in
               zip(out, geo.begin, geo.end, geo.kernel, geo.dilations, geo.strides, strict=True)]
        grads[0] = _crop(n, conv, got, list(xs[2:]))
    if n.want(1):
        grads[1] = _kernel_gradient(n, (n.g, n.shape(n.out())), (x, xs), geo, groups)
    if n.want(2):
        grads[2] = _bias_gradient(n)
    return grads
