"""TensorFlow's own objects where TF takes them: activation functions, initializer and regularizer
objects, arrays in constant initializers, AUTO_REUSE; through the real server and client.

TF-free look-alikes (tests/tf_lookalikes.py) always run; real TensorFlow objects run where
TensorFlow is importable."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerserve
from tests import tf_lookalikes as tfl
from tests.server import ServerProcess

HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed in this environment "
                              "(see the README's 'Recording more reference cases' for a venv with it)")
X = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], np.float32)


@pytest.mark.parametrize(("fn", "name", "reference"), [
    (tfl.relu, "relu", lambda v: np.maximum(v, 0)),
    (tfl.tanh, "tanh", np.tanh),
    (tfl.softmax_v2, "softmax", lambda v: np.exp(v) / np.exp(v).sum(-1, keepdims=True)),
])
def test_activation_function_by_name(conn: layerserve.Connection, fn: object, name: str, reference: object) -> None:
    layer = conn.layers.Dense(4, activation=fn, kernel_initializer=tfl.Constant(np.full((3, 4), 0.25)))
    y = layer(X)
    pre = X @ np.full((3, 4), 0.25, np.float32)
    np.testing.assert_allclose(y, reference(pre), rtol=1e-6, atol=1e-6)  # type: ignore[operator]
    assert layer.get_config()["activation"] == name


def test_custom_callable_says_what_is_accepted(conn: layerserve.Connection) -> None:
    def my_activation(v: object) -> object:
        return v

    with pytest.raises(TypeError, match=r"activation: .*my_activation.* Accepted: an activation name \(.*relu.*\), "
                                        r"or a TensorFlow/Keras function .*tf\.nn\.relu"):
        conn.layers.Dense(2, activation=my_activation)
    with pytest.raises(TypeError, match=r"kernel_initializer: .*Accepted: .*TensorFlow/Keras initializer"):
        conn.layers.Dense(2, kernel_initializer=lambda shape, dtype=None: np.zeros(shape))
    assert conn.layers.Dense(2).name == "dense_1"  # refused before anything reached the server


def test_constant_initializer_with_arrays(conn: layerserve.Connection) -> None:
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer = conn.layers.Dense(2, kernel_initializer=tfl.Constant(kernel), bias_initializer=tfl.Constant([7.0, 8.0]))
    layer(X)
    np.testing.assert_array_equal(layer.get_weights()[0], kernel)
    np.testing.assert_array_equal(layer.get_weights()[1], [7.0, 8.0])
    own = conn.layers.Dense(2, kernel_initializer=layerserve.initializers.Constant(kernel.reshape(-1)))
    own(X)
    np.testing.assert_array_equal(own.get_weights()[0], kernel)  # reshaped, as TF does


def test_constant_initializer_of_the_wrong_size(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2, kernel_initializer=tfl.Constant([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"^Expected Tensor's shape: \(3, 2\), but got \(2,\)\.$"):
        layer(X)
    assert layer.variables == []


def test_tf1_constant_initializer_repeats_its_last_element(conn: layerserve.Connection) -> None:
    v1 = tfl.Constant([1.0, 2.0])
    v1._config["dtype"] = "float32"  # tf.compat.v1.constant_initializer's config
    layer = conn.layers.Dense(2, kernel_initializer=v1)
    layer(X)
    np.testing.assert_array_equal(layer.get_weights()[0], [[1.0, 2.0], [2.0, 2.0], [2.0, 2.0]])


def test_initializer_objects(conn: layerserve.Connection) -> None:
    a = conn.layers.Dense(3, kernel_initializer=tfl.GlorotUniform(seed=3), bias_initializer=tfl.Zeros())
    b = conn.layers.Dense(3, kernel_initializer=tfl.GlorotUniform(seed=3))
    u = conn.layers.Dense(3, kernel_initializer=tfl.RandomUniform())
    for layer in (a, b, u):
        layer(X)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    assert np.abs(a.get_weights()[0]).max() <= np.sqrt(6 / 6)
    assert u.get_weights()[0].min() >= 0.0 and u.get_weights()[0].max() < 1.0  # TF1: maxval None is 1
    assert a.get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"


def test_regularizer_objects(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2, kernel_initializer=tfl.Constant(0.5), kernel_regularizer=tfl.L2(0.01),
                              bias_regularizer=tfl.L1L2(l1=0.1))
    layer(X)
    np.testing.assert_allclose([float(v) for v in layer.losses], [0.01 * 6 * 0.25, 0.0], rtol=1e-6)
    assert layer.get_config()["kernel_regularizer"]["config"] == {"l2": float(np.float32(0.01))}


def test_auto_reuse(conn: layerserve.Connection) -> None:
    first = conn.layers.dense(X, 4, name="fc", reuse=tfl.AUTO_REUSE)  # creates fc/kernel
    second = conn.layers.dense(X, 4, name="fc", reuse=tfl.AUTO_REUSE)  # shares it
    np.testing.assert_array_equal(first, second)
    assert [v.name for v in conn.global_variables()] == ["fc/kernel:0", "fc/bias:0"]


def test_custom_layer_weights_from_tf_objects(conn: layerserve.Connection) -> None:
    pytest.importorskip("onnx", reason="custom layers need the 'custom' extra")

    class Scale(layerserve.layers.Layer):
        def build(self, input_shape: object) -> None:
            self.w = self.add_weight("w", shape=[3], initializer=tfl.Constant([1.0, 2.0, 3.0]),
                                     regularizer=tfl.L2(0.5))
            super().build(input_shape)

        def call(self, inputs: object) -> object:
            return layerserve.ops.multiply(inputs, self.w)

    layer = Scale(_connection=conn)
    np.testing.assert_allclose(layer(X), X * [1.0, 2.0, 3.0])
    np.testing.assert_allclose([float(v) for v in layer.losses], [float(np.float32(0.5)) * 14.0], rtol=1e-6)


# ---- real TensorFlow --------------------------------------------------------------------


@needs_tf
def test_lookalikes_match_tensorflow() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    assert tf.nn.relu.__name__ == tfl.relu.__name__ and tf.tanh.__name__ == tfl.tanh.__name__
    assert tf.nn.softmax.__name__ == tfl.softmax_v2.__name__
    pairs = [(tf.compat.v1.zeros_initializer(), tfl.Zeros()), (tf.keras.regularizers.l2(0.01), tfl.L2(0.01)),
             (tf.compat.v1.glorot_uniform_initializer(seed=3), tfl.GlorotUniform(seed=3)),
             (tf.compat.v1.random_uniform_initializer(), tfl.RandomUniform()),
             (tf.keras.regularizers.l1_l2(l1=0.1, l2=0.0), tfl.L1L2(l1=0.1))]
    for real, fake in pairs:
        assert (type(real).__name__, real.get_config()) == (type(fake).__name__, fake.get_config())
    assert tf.compat.v1.AUTO_REUSE.name == tfl.AUTO_REUSE.name


@needs_tf
def test_real_tensorflow_objects(conn: layerserve.Connection) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    kernel = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    layer = conn.layers.Dense(2, activation=tf.nn.relu, kernel_initializer=tf.constant_initializer(kernel),
                              bias_initializer=tf.compat.v1.zeros_initializer(),
                              kernel_regularizer=tf.keras.regularizers.l2(0.01))
    np.testing.assert_allclose(layer(X), np.maximum(X @ kernel, 0), rtol=1e-6)
    np.testing.assert_allclose(float(layer.losses[0]), 0.01 * float((kernel ** 2).sum()), rtol=1e-5)
    conn.layers.dense(X, 3, name="shared", reuse=tf.compat.v1.AUTO_REUSE)
    conn.layers.dense(X, 3, name="shared", reuse=tf.compat.v1.AUTO_REUSE)
    assert [v.name for v in conn.global_variables()][-2:] == ["shared/kernel:0", "shared/bias:0"]


@needs_tf
def test_tf1_program_runs_after_changing_its_layers_import(server: ServerProcess, tmp_path: Path) -> None:
    """tests/tf1/eager_dense.py gives TensorFlow's numbers with ``from layerserve import layers``."""
    source = (Path(__file__).parent / "tf1" / "eager_dense.py").read_text()
    switched = source.replace("from tensorflow.compat.v1 import layers", "from layerserve import layers")
    assert switched != source
    results = []
    for name, text in (("with_tf.py", source), ("with_layerserve.py", switched)):
        (tmp_path / name).write_text(text)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "LAYERSERVE_URL": server.url, "TF_CPP_MIN_LOG_LEVEL": "3"}
        run = subprocess.run([sys.executable, str(tmp_path / name)], capture_output=True, text=True, env=env,
                             timeout=300, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        results.append(json.loads(run.stdout))
    tf_out, ls_out = results
    for key in ("y", "z", "losses"):
        np.testing.assert_allclose(ls_out[key], tf_out[key], rtol=1e-5, atol=1e-6)
