"""``tf.losses``: TF1's loss functions with their reductions; each adds its loss to ``LOSSES``."""

from __future__ import annotations

from typing import Any

from layerserve.compat.v1 import dtypes, math_ops, nn
from layerserve.compat.v1.graph import GraphKeys, Tensor, get_default_graph
from layerserve.compat.v1.math_ops import composite, convert_to_tensor

__all__ = ["Reduction", "absolute_difference", "add_loss", "compute_weighted_loss", "get_losses",
           "get_regularization_loss", "get_regularization_losses", "get_total_loss", "hinge_loss", "huber_loss",
           "log_loss", "mean_squared_error", "sigmoid_cross_entropy", "softmax_cross_entropy",
           "sparse_softmax_cross_entropy"]


class Reduction:
    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_BY_NONZERO_WEIGHTS)


def _div_no_nan(a: Tensor, b: Tensor) -> Tensor:
    safe = math_ops.where(math_ops.equal(b, 0.0), math_ops.ones_like(b), b)
    return math_ops.where(math_ops.equal(b, 0.0), math_ops.zeros_like(a), math_ops.truediv(a, safe))


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: str | None = None,
                          loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    loss = convert_to_tensor(losses)
    with composite(scope, "weighted_loss") as name:
        w = convert_to_tensor(weights, like=loss)
        weighted = math_ops.multiply(loss, w)
        if reduction == Reduction.NONE:
            result = math_ops.identity(weighted, name=name)
        else:
            total = math_ops.reduce_sum(weighted)
            if reduction == Reduction.SUM:
                result = math_ops.identity(total, name=name)
            elif reduction == Reduction.MEAN:
                broadcast = math_ops.multiply(w, math_ops.ones_like(loss))
                result = math_ops.identity(_div_no_nan(total, math_ops.reduce_sum(broadcast)), name=name)
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                count = math_ops.cast(math_ops.size(loss), loss.dtype)
                result = math_ops.identity(_div_no_nan(total, count), name=name)
            else:
                broadcast = math_ops.multiply(w, math_ops.ones_like(loss))
                nonzero = math_ops.reduce_sum(math_ops.cast(math_ops.not_equal(broadcast, 0.0), loss.dtype))
                result = math_ops.identity(_div_no_nan(total, nonzero), name=name)
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, result)
    return result


def add_loss(loss: Any, loss_collection: Any = GraphKeys.LOSSES) -> None:
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    z = convert_to_tensor(logits)
    with composite(scope, "softmax_cross_entropy_loss"):
        y = math_ops.cast(onehot_labels, z.dtype) if isinstance(onehot_labels, Tensor) else \
            convert_to_tensor(onehot_labels, like=z)
        if label_smoothing > 0:
            classes = z.shape.dims[-1] if z.shape.dims else None
            y = math_ops.add(math_ops.multiply(y, 1.0 - label_smoothing), label_smoothing / float(classes or 1))
        per = nn.softmax_cross_entropy_with_logits_v2(y, z, name="xentropy")
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
                                 loss_collection: Any = GraphKeys.LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    z = convert_to_tensor(logits)
    with composite(scope, "sparse_softmax_cross_entropy_loss"):
        per = nn.sparse_softmax_cross_entropy_with_logits(labels, z, name="xentropy")
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                       loss_collection: Any = GraphKeys.LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    p = convert_to_tensor(predictions)
    with composite(scope, "mean_squared_error"):
        per = math_ops.squared_difference(p, _like(labels, p))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                        loss_collection: Any = GraphKeys.LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    p = convert_to_tensor(predictions)
    with composite(scope, "absolute_difference"):
        per = math_ops.abs(math_ops.subtract(p, _like(labels, p)))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def _like(value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor) and value.dtype != like.dtype:
        return math_ops.cast(value, like.dtype)
    return convert_to_tensor(value, like=like)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    z = convert_to_tensor(logits)
    with composite(scope, "sigmoid_cross_entropy_loss"):
        y = _like(multi_class_labels, z)
        if label_smoothing > 0:
            y = math_ops.add(math_ops.multiply(y, 1.0 - label_smoothing), 0.5 * label_smoothing)
        per = nn.sigmoid_cross_entropy_with_logits(y, z)
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0, scope: str | None = None,
               loss_collection: Any = GraphKeys.LOSSES, reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    p = convert_to_tensor(predictions)
    with composite(scope, "huber_loss"):
        error = math_ops.abs(math_ops.subtract(p, _like(labels, p)))
        quadratic = math_ops.minimum(error, delta)
        linear = math_ops.subtract(error, quadratic)
        per = math_ops.add(math_ops.multiply(0.5, math_ops.multiply(quadratic, quadratic)),
                           math_ops.multiply(delta, linear))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def hinge_loss(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
               loss_collection: Any = GraphKeys.LOSSES, reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    z = convert_to_tensor(logits)
    with composite(scope, "hinge_loss"):
        signs = math_ops.subtract(math_ops.multiply(2.0, _like(labels, z)), 1.0)
        per = nn.relu(math_ops.subtract(1.0, math_ops.multiply(signs, z)))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def log_loss(labels: Any, predictions: Any, weights: Any = 1.0, epsilon: float = 1e-7, scope: str | None = None,
             loss_collection: Any = GraphKeys.LOSSES, reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    p = convert_to_tensor(predictions)
    with composite(scope, "log_loss"):
        y = _like(labels, p)
        per = math_ops.negative(math_ops.add(math_ops.multiply(y, math_ops.log(math_ops.add(p, epsilon))),
                                             math_ops.multiply(math_ops.subtract(1.0, y),
                                                               math_ops.log(math_ops.add(math_ops.subtract(1.0, p),
                                                                                         epsilon)))))
        return compute_weighted_loss(per, weights, None, loss_collection, reduction)


def get_losses(scope: str | None = None, loss_collection: str = GraphKeys.LOSSES) -> list[Any]:
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: str | None = None, name: str = "total_regularization_loss") -> Tensor:
    losses = get_regularization_losses(scope)
    if losses:
        return math_ops.add_n(losses, name=name)
    return math_ops.constant(0.0, dtype=dtypes.float32, name=name)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: str | None = None) -> Tensor:
    losses = get_losses(scope)
    if add_regularization_losses:
        losses += get_regularization_losses(scope)
    if not losses:
        raise ValueError("No losses found.")
    return math_ops.add_n(losses, name=name)
