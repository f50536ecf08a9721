"""Gradient of ONNX's BatchNormalization: inference mode (given mean and variance, which get
gradients too) and training mode (batch statistics, in closed form)."""

from __future__ import annotations

import math

from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


@rule("BatchNormalization")
def _batch_norm(n: NodeGrad) -> Grads:
    em, x, scale = n.em, n.inp(0), n.inp(1)
    shape = n.shape(x)
    rank = len(shape)
    axes = [0, *range(2, rank)]
    per_channel = [1, shape[1], *[1] * (rank - 2)]
    eps = float(n.attr("epsilon", 1e-5))
    training = bool(n.attr("training_mode", 0))
    count = shape[0] * (1 if rank < 3 else math.prod(shape[2:]))

    def channel(t: str) -> str:
        return em.reshape(t, per_channel)

    if training:
        mean = em.op("ReduceMean", [x, em.ints(axes)], keepdims=1)
        centered = em.op("Sub", [x, mean])
        var = em.op("ReduceMean", [em.op("Mul", [centered, centered]), em.ints(axes)], keepdims=1)
    else:
        centered, var = em.op("Sub", [x, channel(n.inp(3))]), channel(n.inp(4))
    inv = em.op("Reciprocal", [em.op("Sqrt", [em.op("Add", [var, n.scalar(eps, x)])])])
    g = n.g
    g_sum = em.reduce_sum(g, axes, keepdims=True, shape=shape, elem=n.elem())
    g_centered = em.reduce_sum(em.op("Mul", [g, centered]), axes, keepdims=True, shape=shape, elem=n.elem())
    gamma_inv = em.op("Mul", [channel(scale), inv])
    grads: Grads = [None] * 5
    if n.want(0):
        if training:  # gamma*inv * (g - mean(g) - xhat * mean(g * xhat))
            xhat_term = em.op("Mul", [centered, em.op("Mul", [em.op("Mul", [inv, inv]), g_centered])])
            inner = em.op("Sub", [em.op("Sub", [g, em.op("Mul", [g_sum, n.scalar(1.0 / count)])]),
                                  em.op("Mul", [xhat_term, n.scalar(1.0 / count)])])
            grads[0] = em.op("Mul", [inner, gamma_inv])
        else:
            grads[0] = em.op("Mul", [g, gamma_inv])
    if n.want(1):
        grads[1] = em.reshape(em.op("Mul", [g_centered, inv]), n.shape(scale))
    if n.want(2):
        grads[2] = em.reshape(g_sum, n.shape(n.inp(2)))
    if not training and n.want(3):
        grads[3] = em.reshape(em.op("Neg", [em.op("Mul", [g_sum, gamma_inv])]), n.shape(n.inp(3)))
    if not training and n.want(4):
        cube = em.op("Mul", [gamma_inv, em.op("Mul", [inv, inv])])
        grads[4] = em.reshape(em.op("Mul", [em.op("Mul", [g_centered, cube]), n.scalar(-0.5, x)]),
                              n.shape(n.inp(4)))
    return grads


@rule("LayerNormalization")
def _layer_norm(n: NodeGrad) -> Grads:
    """Normalized over the axes from ``axis`` on: ``inv * (gh - mean(gh) - xhat * mean(gh * xhat))``
    with ``gh = g * scale``; scale and bias gradients summed over the leading axes."""
    em, x, scale = n.em, n.inp(0), n.inp(1)
    shape = n.shape(x)
    axis = int(n.attr("axis", -1)) % len(shape)
    tail = list(range(axis, len(shape)))
    lead = list(range(axis))
    eps = float(n.attr("epsilon", 1e-5))
    mean = em.op("ReduceMean", [x, em.ints(tail)], keepdims=1)
    centered = em.op("Sub", [x, mean])
    var = em.op("ReduceMean", [em.op("Mul", [centered, centered]), em.ints(tail)], keepdims=1)
    inv = em.op("Reciprocal", [em.op("Sqrt", [em.op("Add", [var, n.scalar(eps, x)])])])
    xhat = em.op("Mul", [centered, inv])
    grads: Grads = [None, None, None]
    if n.want(0):
        gh = em.op("Mul", [n.g, scale])
        mean_gh = em.op("ReduceMean", [gh, em.ints(tail)], keepdims=1)
        mean_ghx = em.op("ReduceMean", [em.op("Mul", [gh, xhat]), em.ints(tail)], keepdims=1)
        inner = em.op("Sub", [em.op("Sub", [gh, mean_gh]), em.op("Mul", [xhat, mean_ghx])])
        grads[0] = em.op("Mul", [inner, inv])
    if n.want(1):
        summed = em.reduce_sum(em.op("Mul", [n.g, xhat]), lead, keepdims=False)
        grads[1] = em.unbroadcast(summed, shape[axis:], n.shape(scale), n.elem())
    if n.want(2):
        summed = em.reduce_sum(n.g, lead, keepdims=False)
        grads[2] = em.unbroadcast(summed, shape[axis:], n.shape(n.inp(2)), n.elem())
    return grads
