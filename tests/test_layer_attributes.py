"""Layer and variable objects as TF users reach for them: ``layer.kernel``, named weights,
config attributes, variables with ``value()`` / ``assign()`` / ``np.asarray``, and reprs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import layerserve

X = np.ones((2, 3), np.float32)


def test_named_weights_after_build(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(4, activation="relu")
    with pytest.raises(AttributeError, match=r"^'Dense' object has no attribute 'kernel'$"):
        dense.kernel  # noqa: B018  (TF: no kernel before the build)
    dense(X)
    assert dense.kernel.name == "dense/kernel:0" and dense.bias.name == "dense/bias:0"
    assert dense.kernel.shape == (3, 4) and dense.kernel.shape.as_list() == [3, 4]
    assert dense.kernel.dtype == "float32" and dense.kernel.trainable
    assert dense.kernel == dense.variables[0]
    bn = conn.layers.BatchNormalization()
    bn(np.ones((2, 3, 2), np.float32))
    assert [bn.gamma.name, bn.beta.name, bn.moving_mean.name, bn.moving_variance.name] == [
        "batch_normalization/gamma:0", "batch_normalization/beta:0", "batch_normalization/moving_mean:0",
        "batch_normalization/moving_variance:0"]
    assert not bn.moving_mean.trainable
    sep = conn.layers.SeparableConv2D(2, 3)
    sep(np.ones((1, 5, 5, 2), np.float32))
    assert (sep.depthwise_kernel.shape, sep.pointwise_kernel.shape) == ((3, 3, 2, 1), (1, 1, 2, 2))
    with pytest.raises(AttributeError, match=r"^'Dense' object has no attribute 'colonel'$"):
        dense.colonel  # noqa: B018


def test_config_attributes(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(4, activation="tanh", use_bias=False)
    assert (dense.units, dense.activation, dense.use_bias) == (4, "tanh", False)
    conv = conn.layers.Conv2D(3, [2, 2], strides=2, padding="same")
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (3, (2, 2), (2, 2), "same")
    assert conn.layers.Dropout(0.25).rate == 0.25
    with pytest.raises(AttributeError, match="is not connected, no input to return"):
        dense.input  # noqa: B018  (TF's own message, not the generic one)


def test_variable_values(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2, kernel_initializer="ones")
    dense(X)
    kernel = dense.kernel
    np.testing.assert_array_equal(kernel.value(), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(kernel.read_value(), kernel.numpy())
    as_array = np.asarray(kernel)
    assert as_array.dtype == np.float32 and as_array.shape == (3, 2)  # not an object array
    assert np.asarray(kernel, dtype=np.float64).dtype == np.float64


def test_assign(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2)
    dense(X)
    new = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert dense.kernel.assign(new) == dense.kernel
    np.testing.assert_array_equal(dense.get_weights()[0], new)
    np.testing.assert_array_equal(dense(X), X @ new)
    dense.bias.assign_add([1.0, 2.0])
    np.testing.assert_array_equal(dense.bias.numpy(), [1.0, 2.0])
    [global_bias] = [v for v in conn.global_variables() if v.name == "dense/bias:0"]
    assert global_bias.assign_sub([1.0, 1.0], read_value=False) is None
    np.testing.assert_array_equal(dense.bias.numpy(), [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^Cannot assign value to variable ' dense/kernel:0': Shape mismatch\."
                                         r"The variable shape \(3, 2\), and the assigned value shape \(2,\) "
                                         r"are incompatible\.$"):
        dense.kernel.assign([1.0, 2.0])


def test_concurrent_assigns_lose_nothing(conn: layerserve.Connection, server: object) -> None:
    dense = conn.layers.Dense(2)
    dense(X)
    errors: list[BaseException] = []

    def assign(which: str, value: float) -> None:
        try:
            with layerserve.connect(conn.url, graph=conn.graph) as other:
                [layer] = other.list_layers()
                for _ in range(5):
                    getattr(layer, which).assign(np.full(getattr(layer, which).shape, value, np.float32))
        except BaseException as exc:  # a failure in the thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=assign, args=("kernel", 3.0)), threading.Thread(target=assign, args=("bias", 5.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    np.testing.assert_array_equal(dense.kernel.numpy(), np.full((3, 2), 3.0))
    np.testing.assert_array_equal(dense.bias.numpy(), [5.0, 5.0])


def test_reprs(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2)
    dense(X)
    assert repr(dense) == f"<layerserve Dense 'dense_1' (id {dense.id}, graph {conn.graph!r})>"
    assert repr(dense.kernel) == (f"<RemoteVariable 'dense/kernel:0' shape=(3, 2) dtype=float32 trainable=True "
                                  f"graph={conn.graph!r}>")


def test_custom_layer_weight_attributes(conn: layerserve.Connection) -> None:
    pytest.importorskip("onnx", reason="custom layers need the 'custom' extra")

    class Scale(layerserve.layers.Layer):
        def build(self, input_shape: object) -> None:
            self.w = self.add_weight("w", shape=[3], initializer="ones")
            super().build(input_shape)

        def call(self, inputs: object) -> object:
            return layerserve.ops.multiply(inputs, self.w)

    layer = Scale(_connection=conn)
    layer(X)
    layer.w.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer.w.value(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer(X), X * [1.0, 2.0, 3.0])
