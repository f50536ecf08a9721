"""A custom layer's ``training`` flag is a symbolic tensor: ``if training:`` raises TF's TypeError
(it would otherwise pick one branch for every apply); ``ops.where`` / ``ops.cond`` select per apply."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import layerserve
from layerserve import ops

pytest.importorskip("onnx", reason="custom layers need the 'custom' extra")

TF_MESSAGE = (
    "Using a symbolic `tf.Tensor` as a Python `bool` is not allowed. You can attempt the following resolutions to "
    "the problem: If you are running in Graph mode, use Eager execution mode or decorate this function with "
    "@tf.function. If you are using AutoGraph, you can try decorating this function with @tf.function. If that "
    "does not work, then you may be using an unsupported feature or your source code may not be visible to "
    "AutoGraph. See https://github.com/tensorflow/tensorflow/blob/master/tensorflow/python/autograph/g3doc/"
    "reference/limitations.md#access-to-source-code for more information.")


class PythonBranch(layerserve.layers.Layer):
    def call(self, inputs: Any, training: Any = None) -> Any:
        if training:
            return inputs * 2.0
        return inputs


class TensorBranch(layerserve.layers.Layer):
    def call(self, inputs: Any, training: Any = None) -> Any:
        return ops.cond(training, lambda: inputs * 2.0, lambda: inputs)


def test_python_bool_of_a_symbolic_tensor_raises_tfs_type_error(conn: layerserve.Connection) -> None:
    with pytest.raises(TypeError) as caught:
        PythonBranch(_connection=conn)
    assert str(caught.value) == TF_MESSAGE
    assert conn.layers.Dense(1).name == "dense_1"  # nothing half-created


def test_training_selected_per_apply_with_cond(conn: layerserve.Connection) -> None:
    layer = TensorBranch(_connection=conn)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(layer(x, training=True), x * 2.0)
    np.testing.assert_array_equal(layer(x), x)  # None: inference, as TF's learning phase default


def test_tensor_ops_that_need_a_bool_raise_too(conn: layerserve.Connection) -> None:
    class AndOr(layerserve.layers.Layer):
        def call(self, inputs: Any, training: Any = None) -> Any:
            return training and inputs

    with pytest.raises(TypeError, match=r"^Using a symbolic `tf\.Tensor` as a Python `bool` is not allowed"):
        AndOr(_connection=conn)
