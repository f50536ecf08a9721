"""Every function of ``layerserve.ops``, traced in a custom layer's ``call``, run by the server
and compared with numpy (float32: rtol 1e-5 as TF's own op tests use for float32)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import layerserve
from layerserve import ops

X = np.array([[0.5, -1.5, 2.0, 3.0], [-0.25, 1.0, -2.5, 4.0]], np.float32)
POSITIVE = np.abs(X) + 0.5
W = np.array([2.0, -1.0, 0.5, 1.5], np.float32)
Fn = Callable[[Any, Any], Any]


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class OpLayer(layerserve.layers.Layer):
    """``call`` is ``fn(inputs, w)``: ``w`` a weight of shape [4] holding ``W``."""

    def __init__(self, fn: Fn, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fn = fn

    def build(self, input_shape: Any) -> None:
        self.w = self.add_weight("w", [4], initializer=W)

    def call(self, inputs: Any) -> Any:
        return self.fn(inputs, self.w)


CASES: dict[str, tuple[Fn, Callable[[np.ndarray], np.ndarray], np.ndarray]] = {
    "add": (lambda x, w: ops.add(x, w), lambda x: x + W, X),
    "subtract": (lambda x, w: ops.subtract(x, 1.5), lambda x: x - 1.5, X),
    "multiply": (lambda x, w: ops.multiply(w, x), lambda x: W * x, X),
    "divide": (lambda x, w: ops.divide(x, w), lambda x: x / W, X),
    "maximum": (lambda x, w: ops.maximum(x, w), lambda x: np.maximum(x, W), X),
    "minimum": (lambda x, w: ops.minimum(x, 0.0), lambda x: np.minimum(x, 0.0), X),
    "matmul": (lambda x, w: ops.matmul(x, ops.reshape(w, [4, 1])), lambda x: x @ W.reshape(4, 1), X),
    "matmul_transpose_a": (lambda x, w: ops.matmul(x, x, transpose_a=True), lambda x: x.T @ x, X),
    "matmul_transpose_b": (lambda x, w: ops.matmul(x, x, transpose_b=True), lambda x: x @ x.T, X),
    "negative": (lambda x, w: ops.negative(x), np.negative, X),
    "abs": (lambda x, w: ops.abs(x), np.abs, X),
    "square": (lambda x, w: ops.square(x), np.square, X),
    "sqrt": (lambda x, w: ops.sqrt(x), np.sqrt, POSITIVE),
    "rsqrt": (lambda x, w: ops.rsqrt(x), lambda x: 1 / np.sqrt(x), POSITIVE),
    "exp": (lambda x, w: ops.exp(x), np.exp, X),
    "log": (lambda x, w: ops.log(x), np.log, POSITIVE),
    "tanh": (lambda x, w: ops.tanh(x), np.tanh, X),
    "sigmoid": (lambda x, w: ops.sigmoid(x), lambda x: 1 / (1 + np.exp(-x)), X),
    "relu": (lambda x, w: ops.relu(x), lambda x: np.maximum(x, 0), X),
    "softmax": (lambda x, w: ops.softmax(x), _softmax, X),
    "softmax_axis0": (lambda x, w: ops.softmax(x, axis=0), lambda x: _softmax(x, 0), X),
    "identity": (lambda x, w: ops.identity(x), lambda x: x, X),
    "stop_gradient": (lambda x, w: ops.stop_gradient(x), lambda x: x, X),
    "reduce_sum": (lambda x, w: ops.reduce_sum(x, axis=1), lambda x: x.sum(axis=1), X),
    "reduce_sum_all": (lambda x, w: ops.reduce_sum(x), lambda x: np.asarray(x.sum()), X),
    "reduce_mean_keepdims": (lambda x, w: ops.reduce_mean(x, axis=[0], keepdims=True),
                             lambda x: x.mean(axis=0, keepdims=True), X),
    "reduce_max": (lambda x, w: ops.reduce_max(x, axis=-1), lambda x: x.max(axis=-1), X),
    "reduce_min": (lambda x, w: ops.reduce_min(x, axis=0), lambda x: x.min(axis=0), X),
    "l2_loss": (lambda x, w: ops.l2_loss(x), lambda x: np.asarray((x**2).sum() / 2), X),
    "reshape": (lambda x, w: ops.reshape(x, [4, 2]), lambda x: x.reshape(4, 2), X),
    "transpose": (lambda x, w: ops.transpose(x, [1, 0]), lambda x: x.T, X),
    "expand_dims": (lambda x, w: ops.expand_dims(x, 1), lambda x: x[:, None, :], X),
    "concat": (lambda x, w: ops.concat([x, x * 2.0], axis=1), lambda x: np.concatenate([x, x * 2], 1), X),
    "shape": (lambda x, w: ops.cast(ops.shape(x), "float32"), lambda x: np.asarray(x.shape, np.float32), X),
    "cast": (lambda x, w: ops.cast(ops.cast(x, np.int32), np.float32), lambda x: np.trunc(x), X),
    "nn.relu": (lambda x, w: ops.nn.relu(x), lambda x: np.maximum(x, 0), X),
    "nn.sigmoid": (lambda x, w: ops.nn.sigmoid(x), lambda x: 1 / (1 + np.exp(-x)), X),
    "nn.tanh": (lambda x, w: ops.nn.tanh(x), np.tanh, X),
    "nn.softmax": (lambda x, w: ops.nn.softmax(x), _softmax, X),
    "nn.l2_loss": (lambda x, w: ops.nn.l2_loss(x), lambda x: np.asarray((x**2).sum() / 2), X),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_numpy(conn: layerserve.Connection, name: str) -> None:
    fn, reference, x = CASES[name]
    y = OpLayer(fn)(x)
    want = reference(x).astype(np.float32)
    assert y.shape == want.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_every_op_is_covered() -> None:
    """A new function in ``layerserve.ops`` needs a case here."""
    covered = {re.sub(r"_(axis0|keepdims|all|transpose_[ab])$", "", name).split(".")[0] for name in CASES}
    covered |= {"where", "cond", "assign", "moving_average_update", "UpdateOp"}  # the two tests below
    assert set(ops.__all__) == covered


class Gated(layerserve.layers.Layer):
    """``where`` on the training flag; ``assign`` and ``moving_average_update`` as updates."""

    def build(self, input_shape: Any) -> None:
        self.last = self.add_weight("last", [4], initializer="zeros", trainable=False)
        self.mean = self.add_weight("mean", [4], initializer="ones", trainable=False)

    def call(self, inputs: Any, training: Any = None) -> Any:
        batch_mean = ops.reduce_mean(inputs, axis=0)
        self.add_update(ops.assign(self.last, batch_mean))
        self.add_update(ops.moving_average_update(self.mean, batch_mean, 0.75))
        return ops.where(training, inputs * 2.0, inputs)


def test_where_assign_and_moving_average_update(conn: layerserve.Connection) -> None:
    layer = Gated()
    np.testing.assert_allclose(layer(X, training=False), X, rtol=1e-6)
    np.testing.assert_allclose(layer(X, training=True), X * 2, rtol=1e-6)
    layer.run_updates(X)
    mean = X.mean(axis=0)
    np.testing.assert_allclose(layer.last.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(layer.mean.numpy(), 0.75 + 0.25 * mean, rtol=1e-6)
    with pytest.raises(ValueError, match="momentum"):
        ops.moving_average_update(layer.mean, X, 1.5)


class Branches(layerserve.layers.Layer):
    """``cond`` on the training flag: both branches recorded, one result per apply."""

    def call(self, inputs: Any, training: Any = None) -> Any:
        return ops.cond(training, lambda: ops.square(inputs), lambda: ops.negative(inputs))


def test_cond_selects_a_branch_per_apply(conn: layerserve.Connection) -> None:
    layer = Branches()
    np.testing.assert_allclose(layer(X, training=True), X**2, rtol=1e-6)
    np.testing.assert_allclose(layer(X, training=False), -X, rtol=1e-6)
