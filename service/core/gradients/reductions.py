"""Gradients of reductions, softmax and log-softmax."""

from __future__ import annotations

import math

from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


def _axes(n: NodeGrad) -> list[int] | None:
    """The reduced axes (non-negative), or None when the op is an identity (no axes given and
    ``noop_with_empty_axes``)."""
    rank = n.info.rank(n.inp(0))
    given = n.attr("axes")
    if given is None and n.inp(1):
        given = n.const_ints(1, "axes")
    if not given:
        return None if int(n.attr("noop_with_empty_axes", 0)) else list(range(rank))
    return sorted({int(a) % rank for a in given})


def _kept(n: NodeGrad, value: str, axes: list[int]) -> str:
    """``value`` (reduced, with or without keepdims) reshaped to the input's rank."""
    shape = n.shape(n.inp(0))
    return n.em.reshape(value, [1 if i in axes else d for i, d in enumerate(shape)])


def _spread(n: NodeGrad, value: str, axes: list[int]) -> str:
    """``value`` kept at the input's rank and broadcast to its shape."""
    return n.em.op("Expand", [_kept(n, value, axes), n.em.ints(n.shape(n.inp(0)))])


def _reduce_rule(n: NodeGrad) -> tuple[list[int] | None, str]:
    axes = _axes(n)
    return axes, n.g if axes is None else _kept(n, n.g, axes)


@rule("ReduceSum")
def _reduce_sum(n: NodeGrad) -> Grads:
    axes = _axes(n)
    return [n.g if axes is None else _spread(n, n.g, axes)]


@rule("ReduceMean")
def _reduce_mean(n: NodeGrad) -> Grads:
    axes = _axes(n)
    if axes is None:
        return [n.g]
    shape = n.shape(n.inp(0))
    count = math.prod(shape[a] for a in axes)
    return [n.em.op("Mul", [_spread(n, n.g, axes), n.scalar(1.0 / max(count, 1))])]


@rule("ReduceMax", "ReduceMin")
def _reduce_extreme(n: NodeGrad) -> Grads:
    """TF's: ties share the gradient equally."""
    axes, g = _reduce_rule(n)
    if axes is None:
        return [g]
    em, x = n.em, n.inp(0)
    hit = em.op("Cast", [em.op("Equal", [x, _kept(n, n.out(), axes)])], to=n.elem())
    count = em.reduce_sum(hit, axes, keepdims=True)
    return [em.op("Mul", [em.op("Div", [hit, count]), g])]


@rule("ReduceProd")
def _reduce_prod(n: NodeGrad) -> Grads:
    """The product of the other cells, exact where cells are zero: from the product of the
    non-zero cells and the count of zeros."""
    axes, g = _reduce_rule(n)
    if axes is None:
        return [g]
    em, x = n.em, n.inp(0)
    zero, one = n.scalar(0.0), n.scalar(1.0)
    is_zero = em.op("Equal", [x, zero])
    nonzero_prod = em.op("ReduceProd", [em.op("Where", [is_zero, one, x]), em.ints(axes)], keepdims=1)
    zeros = em.reduce_sum(em.op("Cast", [is_zero], to=n.elem()), axes, keepdims=True)
    safe_x = em.op("Where", [is_zero, one, x])
    when_nonzero = em.op("Where", [em.op("Equal", [zeros, zero]), em.op("Div", [nonzero_prod, safe_x]), zero])
    when_zero = em.op("Where", [em.op("Equal", [zeros, one]), nonzero_prod, zero])
    others = em.op("Where", [is_zero, when_zero, when_nonzero])
    return [em.op("Mul", [others, g])]


@rule("ReduceSumSquare")
def _reduce_sum_square(n: NodeGrad) -> Grads:
    _, g = _reduce_rule(n)
    twice = n.em.op("Mul", [n.inp(0), n.scalar(2.0)])
    return [n.em.op("Mul", [twice, g])]


@rule("ReduceL1")
def _reduce_l1(n: NodeGrad) -> Grads:
    _, g = _reduce_rule(n)
    return [n.em.op("Mul", [n.em.op("Sign", [n.inp(0)]), g])]


@rule("ReduceL2")
def _reduce_l2(n: NodeGrad) -> Grads:
    axes, g = _reduce_rule(n)
    norm = n.out() if axes is None else _kept(n, n.out(), axes)
    return [n.em.op("Mul", [n.em.op("Div", [n.inp(0), norm]), g])]


@rule("ReduceLogSumExp")
def _reduce_log_sum_exp(n: NodeGrad) -> Grads:
    axes, g = _reduce_rule(n)
    y = n.out() if axes is None else _kept(n, n.out(), axes)
    return [n.em.op("Mul", [n.em.op("Exp", [n.em.op("Sub", [n.inp(0), y])]), g])]


@rule("ReduceLogSum")
def _reduce_log_sum(n: NodeGrad) -> Grads:
    axes, g = _reduce_rule(n)
    y = n.out() if axes is None else _kept(n, n.out(), axes)
    share = n.em.op("Div", [g, n.em.op("Exp", [y])])
    return [n.em.op("Expand", [share, n.em.ints(n.shape(n.inp(0)))])]


def _softmax_axis(n: NodeGrad) -> int:
    return int(n.attr("axis", -1)) % n.info.rank(n.inp(0))


@rule("Softmax")
def _softmax(n: NodeGrad) -> Grads:
    em, y, axis = n.em, n.out(), _softmax_axis(n)
    inner = em.reduce_sum(em.op("Mul", [n.g, y]), [axis], keepdims=True)
    return [em.op("Mul", [y, em.op("Sub", [n.g, inner])])]


@rule("LogSoftmax")
def _log_softmax(n: NodeGrad) -> Grads:
    em, axis = n.em, _softmax_axis(n)
    total = em.reduce_sum(n.g, [axis], keepdims=True)
    return [em.op("Sub", [n.g, em.op("Mul", [em.op("Exp", [n.out()]), total])])]
