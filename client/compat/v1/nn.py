"""``tf.nn``: activations and the other ops of the spec; activations also name themselves to
the server (``activation=tf.nn.relu`` on a hosted layer travels as ``"relu"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from layerserve.compat.v1 import math_ops
from layerserve.compat.v1.graph import Tensor
from layerserve.compat.v1.math_ops import composite, convert_to_tensor, op

__all__ = ["bias_add", "elu", "l2_loss", "l2_normalize", "leaky_relu", "log_softmax", "moments", "relu", "relu6",
           "selu", "sigmoid", "sigmoid_cross_entropy_with_logits", "softmax", "softmax_cross_entropy_with_logits",
           "softmax_cross_entropy_with_logits_v2", "softplus", "softsign", "sparse_softmax_cross_entropy_with_logits",
           "swish", "tanh", "dropout"]


def _wire(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.to_wire = lambda: name  # type: ignore[attr-defined]
        return fn
    return mark


@_wire("relu")
def relu(features: Any, name: str | None = None) -> Tensor:
    return op("Relu", [convert_to_tensor(features)], name or "Relu", "Relu")


@_wire("relu6")
def relu6(features: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(features)
    with composite(name, "Relu6") as scope:
        return op("Max", [math_ops.minimum(x, 6.0), convert_to_tensor(0.0, like=x)], scope, "Relu6")


@_wire("elu")
def elu(features: Any, name: str | None = None) -> Tensor:
    return op("Elu", [convert_to_tensor(features)], name or "Elu", "Elu", alpha=1.0)


@_wire("selu")
def selu(features: Any, name: str | None = None) -> Tensor:
    return op("Selu", [convert_to_tensor(features)], name or "Selu", "Selu")


@_wire("softplus")
def softplus(features: Any, name: str | None = None) -> Tensor:
    return op("Softplus", [convert_to_tensor(features)], name or "Softplus", "Softplus")


@_wire("softsign")
def softsign(features: Any, name: str | None = None) -> Tensor:
    return op("Softsign", [convert_to_tensor(features)], name or "Softsign", "Softsign")


@_wire("sigmoid")
def sigmoid(x: Any, name: str | None = None) -> Tensor:
    return math_ops.sigmoid(x, name)


@_wire("tanh")
def tanh(x: Any, name: str | None = None) -> Tensor:
    return math_ops.tanh(x, name)


@_wire("swish")
def swish(features: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(features)
    with composite(name, "swish") as scope:
        return op("Mul", [x, math_ops.sigmoid(x)], scope, "Mul")


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    return op("LeakyRelu", [convert_to_tensor(features)], name or "LeakyRelu", "LeakyRelu", alpha=float(alpha))


@_wire("softmax")
def softmax(logits: Any, axis: int | None = None, name: str | None = None, dim: int | None = None) -> Tensor:
    a = -1 if axis is None and dim is None else int(axis if axis is not None else dim)  # type: ignore[arg-type]
    return op("Softmax", [convert_to_tensor(logits)], name or "Softmax", "Softmax", axis=a)


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None, dim: int | None = None) -> Tensor:
    a = -1 if axis is None and dim is None else int(axis if axis is not None else dim)  # type: ignore[arg-type]
    return op("LogSoftmax", [convert_to_tensor(logits)], name or "LogSoftmax", "LogSoftmax", axis=a)


def bias_add(value: Any, bias: Any, data_format: str | None = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(value)
    b = convert_to_tensor(bias, like=x)
    if data_format in ("NCHW", "NCW", "NCDHW") and x.shape.ndims is not None:
        b = math_ops.reshape(b, [-1] + [1] * (x.shape.ndims - 2))
    return op("Add", [x, b], name or "BiasAdd", "BiasAdd")


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """``sum(t ** 2) / 2``."""
    x = convert_to_tensor(t)
    with composite(name, "L2Loss") as scope:
        return op("Mul", [math_ops.reduce_sum(math_ops.square(x)), convert_to_tensor(0.5, like=x)], scope, "L2Loss")


def l2_normalize(x: Any, axis: Any = None, epsilon: float = 1e-12, name: str | None = None, dim: Any = None) -> Tensor:
    t = convert_to_tensor(x)
    with composite(name, "l2_normalize") as scope:
        square_sum = math_ops.reduce_sum(math_ops.square(t), axis if axis is not None else dim, keepdims=True)
        inv = math_ops.rsqrt(math_ops.maximum(square_sum, epsilon))
        return op("Mul", [t, inv], scope, "Mul")


def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None, keep_dims: Any = None,
            keepdims: Any = None) -> tuple[Tensor, Tensor]:
    """``(mean, variance)``: the population variance (ddof 0)."""
    t = convert_to_tensor(x)
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with composite(name, "moments"):
        mean = math_ops.reduce_mean(t, axes, keepdims=True, name="mean")
        variance = math_ops.reduce_mean(math_ops.squared_difference(t, math_ops.stop_gradient(mean)), axes,
                                        keepdims=True, name="variance")
        if not keep:
            mean = math_ops.squeeze(mean, axes)
            variance = math_ops.squeeze(variance, axes)
        return mean, variance


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: Any = None, name: str | None = None,
            rate: Any = None) -> Tensor:
    from layerserve.compat.v1.layers import dropout as layer_dropout

    r = rate if rate is not None else 1.0 - float(keep_prob)
    out: Tensor = layer_dropout(x, rate=r, noise_shape=noise_shape, seed=seed, training=True, name=name)
    return out


def softmax_cross_entropy_with_logits_v2(labels: Any = None, logits: Any = None, axis: int = -1,
                                         name: str | None = None, dim: int | None = None) -> Tensor:
    z = convert_to_tensor(logits)
    y = convert_to_tensor(labels, like=z)
    with composite(name, "softmax_cross_entropy_with_logits") as scope:
        per = math_ops.reduce_sum(math_ops.multiply(y, log_softmax(z, axis=axis)), axis if dim is None else dim)
        return op("Neg", [per], scope, "Neg")


softmax_cross_entropy_with_logits = softmax_cross_entropy_with_logits_v2


def sparse_softmax_cross_entropy_with_logits(labels: Any = None, logits: Any = None,
                                             name: str | None = None) -> Tensor:
    z = convert_to_tensor(logits)
    depth = z.shape.dims[-1] if z.shape.dims else None
    if depth is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs logits with a known last dimension")
    onehot = math_ops.one_hot(labels, depth, dtype=z.dtype)
    return softmax_cross_entropy_with_logits_v2(onehot, z, name=name or "SparseSoftmaxCrossEntropyWithLogits")


def sigmoid_cross_entropy_with_logits(labels: Any = None, logits: Any = None, name: str | None = None) -> Tensor:
    """``max(z, 0) - z * y + log(1 + exp(-|z|))``."""
    z = convert_to_tensor(logits)
    y = convert_to_tensor(labels, like=z)
    with composite(name, "logistic_loss") as scope:
        relu_z = math_ops.maximum(z, 0.0)
        log_term = math_ops.log1p(math_ops.exp(math_ops.negative(math_ops.abs(z))))
        return op("Add", [math_ops.subtract(relu_z, math_ops.multiply(z, y)), log_term], scope, "Add")
