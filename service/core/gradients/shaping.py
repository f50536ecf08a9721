"""Gradients of ops that move values without arithmetic: reshapes, transposes, slicing,
concatenation, gathering (summing where one value was read several times), padding."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from layerserve.server.core.gradients.emitter import Emitter
from layerserve.server.core.gradients.errors import UnsupportedGradient
from layerserve.server.core.gradients.info import np_dtype
from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


@rule("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(n: NodeGrad) -> Grads:
    return [n.em.reshape(n.g, n.shape(n.inp(0)))]


@rule("Transpose")
def _transpose(n: NodeGrad) -> Grads:
    rank = n.info.rank(n.inp(0))
    perm = list(n.attr("perm", list(reversed(range(rank)))))
    return [n.em.op("Transpose", [n.g], perm=[int(i) for i in np.argsort(perm)])]


@rule("Expand")
def _expand(n: NodeGrad) -> Grads:
    return [n.unbroadcast(n.g, 0)]


@rule("Tile")
def _tile(n: NodeGrad) -> Grads:
    shape, out = n.shape(n.inp(0)), n.shape(n.out())
    interleaved = [d for o, s in zip(out, shape, strict=True) for d in (o // s if s else 0, s)]
    folded = n.em.reshape(n.g, interleaved)
    summed = n.em.reduce_sum(folded, list(range(0, 2 * len(shape), 2)), keepdims=False)
    return [n.em.reshape(summed, shape)]


@rule("Concat")
def _concat(n: NodeGrad) -> Grads:
    rank = n.info.rank(n.out())
    axis = int(n.attr("axis")) % rank
    grads: Grads = []
    offset = 0
    for i, x in enumerate(n.node.input):
        size = n.shape(x)[axis]
        if n.want(i):
            grads.append(n.em.op("Slice", [n.g, n.em.ints([offset]), n.em.ints([offset + size]), n.em.ints([axis])]))
        else:
            grads.append(None)
        offset += size
    return grads


@rule("Split")
def _split(n: NodeGrad) -> Grads:
    rank = n.info.rank(n.inp(0))
    parts = [n.grad_of(i) for i in range(len(n.node.output))]
    return [n.em.op("Concat", parts, axis=int(n.attr("axis", 0)) % rank)]


@rule("CumSum")
def _cumsum(n: NodeGrad) -> Grads:
    return [n.em.op("CumSum", [n.g, n.inp(1)], exclusive=int(n.attr("exclusive", 0)),
                    reverse=1 - int(n.attr("reverse", 0)))]


@rule("Pad")
def _pad(n: NodeGrad) -> Grads:
    """Constant padding: the gradient crops what was added (a Pad with the pads negated)."""
    if n.attr("mode", "constant") != "constant":
        raise UnsupportedGradient(f"Pad(mode={n.attr('mode')})", n.node.name)
    pads = n.const_ints(1, "pads")
    axes_in = n.inp(3)
    inputs = [n.g, n.em.ints([-p for p in pads])]
    if axes_in:
        inputs += ["", axes_in]
    return [n.em.op("Pad", inputs, mode="constant")]


@rule("Slice")
def _slice(n: NodeGrad) -> Grads:
    shape = n.shape(n.inp(0))
    starts, ends = n.const_ints(1, "starts"), n.const_ints(2, "ends")
    axes = n.const_ints(3, "axes") if n.inp(3) else list(range(len(starts)))
    steps = n.const_ints(4, "steps") if n.inp(4) else [1] * len(starts)
    picked = {a % len(shape): np.arange(shape[a % len(shape)])[slice(s, e, st)]
              for s, e, a, st in zip(starts, ends, axes, steps, strict=True)}
    return [_place(n.em, n.g, shape, picked, n.elem())]


def _place(em: Emitter, g: str, shape: tuple[int, ...], picked: dict[int, np.ndarray], elem: int) -> str:
    """Put ``g`` (the picked cells) back at their places in zeros of ``shape``."""
    pads = [0] * (2 * len(shape))
    for axis, idx in sorted(picked.items()):
        size = shape[axis]
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            pads[axis], pads[len(shape) + axis] = int(idx[0]), size - int(idx[-1]) - 1
            continue
        slot = [0] * (2 * len(shape))
        slot[len(shape) + axis] = 1  # one zero cell to read for the cells no output took
        inverse = np.full(size, idx.size, dtype=np.int64)
        inverse[idx] = np.arange(idx.size)
        g = em.op("Gather", [em.op("Pad", [g, em.ints(slot)]), em.const(inverse)], axis=axis)
    return em.op("Pad", [g, em.ints(pads)]) if any(pads) else g


@rule("Gather")
def _gather(n: NodeGrad) -> Grads:
    data, indices = n.inp(0), n.inp(1)
    shape = n.shape(data)
    axis = int(n.attr("axis", 0)) % len(shape)
    values = n.info.constant(indices)
    if values is not None:
        flat = values.reshape(-1).astype(np.int64)
        return [_gather_constant(n, shape, axis, np.where(flat < 0, flat + shape[axis], flat))]
    return [_gather_dynamic(n, shape, axis)]


def _gather_constant(n: NodeGrad, shape: tuple[int, ...], axis: int, flat: np.ndarray) -> str:
    """Sum, for each cell of the gathered axis, the output cells that read it: one Gather of
    the output gradient by an inverse index table; cells read very often (a padding row) are
    summed apart by a MatMul with a selection matrix so the table stays narrow."""
    em, size, m = n.em, shape[axis], flat.size
    pre, post = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    counts = np.bincount(flat, minlength=size)
    width = max(1, math.ceil(4 * (m + size) / max(size, 1)))
    heavy = [int(j) for j in np.nonzero(counts > width)[0]]
    depth = max([int(c) for j, c in enumerate(counts) if j not in set(heavy)] + [1])
    table = np.full((size, depth), m, dtype=np.int64)
    for j in range(size):
        if j not in heavy:
            where = np.nonzero(flat == j)[0]
            table[j, :where.size] = where
    g3 = em.reshape(n.g, [pre, m, post])
    pieces = [g3, em.zeros([pre, 1, post], n.elem())]
    for h, j in enumerate(heavy):
        table[j, 0] = m + 1 + h
    if heavy:
        select = np.zeros((len(heavy), m), dtype=np_dtype(n.elem()))
        for h, j in enumerate(heavy):
            select[h, flat == j] = 1
        pieces.append(em.op("MatMul", [em.const(select), g3]))
    source = em.op("Concat", pieces, axis=1)
    gathered = em.op("Gather", [source, em.const(table if depth > 1 else table[:, 0])], axis=1)
    if depth > 1:
        gathered = em.reduce_sum(gathered, [2], keepdims=False)
    return em.reshape(gathered, shape)


def _scatter_type(n: NodeGrad) -> int:
    """ONNX Runtime's CPU scatter-add has no float16 kernel: accumulate in float32 there."""
    return TensorProto.FLOAT if n.elem() == TensorProto.FLOAT16 else n.elem()


def _gather_dynamic(n: NodeGrad, shape: tuple[int, ...], axis: int) -> str:
    em, indices = n.em, n.inp(1)
    index_rank = len(n.shape(indices))
    out_rank = len(n.shape(n.out()))
    idx = em.cast(indices, TensorProto.INT64, n.elem(indices))
    idx = em.op("Where", [em.op("Less", [idx, em.ints([0])]), em.op("Add", [idx, em.ints([shape[axis]])]), idx])
    # updates with the index dims first, then the data dims in order without the gathered one
    perm = [*range(axis, axis + index_rank), *range(axis), *range(axis + index_rank, out_rank)]
    work = _scatter_type(n)
    updates = em.cast(em.op("Transpose", [n.g], perm=perm), work, n.elem())
    moved = [shape[axis], *shape[:axis], *shape[axis + 1:]]
    target = em.zeros(moved, work)
    scattered = em.op("ScatterND", [target, em.op("Unsqueeze", [idx, em.ints([-1])]), updates], reduction="add")
    back = em.op("Transpose", [scattered], perm=[*range(1, axis + 1), 0, *range(axis + 1, len(shape))])
    return em.cast(back, n.elem(), work)


@rule("GatherElements")
def _gather_elements(n: NodeGrad) -> Grads:
    em, work = n.em, _scatter_type(n)
    target = em.zeros(n.shape(n.inp(0)), work)
    idx = em.cast(n.inp(1), TensorProto.INT64, n.elem(n.inp(1)))
    scattered = em.op("ScatterElements", [target, idx, em.cast(n.g, work, n.elem())],
                      axis=int(n.attr("axis", 0)), reduction="add")
    return [em.cast(scattered, n.elem(), work)]


@rule("GatherND")
def _gather_nd(n: NodeGrad) -> Grads:
    if int(n.attr("batch_dims", 0)) != 0:
        raise UnsupportedGradient("GatherND(batch_dims>0)", n.node.name)
    em, work = n.em, _scatter_type(n)
    target = em.zeros(n.shape(n.inp(0)), work)
    idx = em.cast(n.inp(1), TensorProto.INT64, n.elem(n.inp(1)))
    scattered = em.op("ScatterND", [target, idx, em.cast(n.g, work, n.elem())], reduction="add")
    return [em.cast(scattered, n.elem(), work)]


@rule("Trilu")
def _trilu(n: NodeGrad) -> Grads:
    """The same triangle of the gradient."""
    inputs = [n.g, n.inp(1)] if n.inp(1) else [n.g]
    return [n.em.op("Trilu", inputs, upper=int(n.attr("upper", 1)))]


@rule("DepthToSpace", "SpaceToDepth")
def _depth_space(n: NodeGrad) -> Grads:
    """Each is the other's inverse (DepthToSpace in its default DCR order)."""
    block = int(n.attr("blocksize"))
    if n.node.op_type == "SpaceToDepth":
        return [n.em.op("DepthToSpace", [n.g], blocksize=block, mode="DCR")]
    if n.attr("mode", "DCR") != "DCR":
        raise UnsupportedGradient("DepthToSpace(mode=CRD)", n.node.name)
    return [n.em.op("SpaceToDepth", [n.g], blocksize=block)]


@rule("TopK")
def _top_k(n: NodeGrad) -> Grads:
    """The values' gradient goes back to the cells the indices name."""
    em, work = n.em, _scatter_type(n)
    target = em.zeros(n.shape(n.inp(0)), work)
    scattered = em.op("ScatterElements", [target, n.out(1), em.cast(n.g, work, n.elem())],
                      axis=int(n.attr("axis", -1)))
    return [em.cast(scattered, n.elem(), work)]
