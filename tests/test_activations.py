"""Every Keras activation name, through Dense with an identity kernel, against numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

import layerserve

_erf = np.vectorize(math.erf)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
}
TOLERANCE = {"float16": 1e-2, "float32": 1e-5, "float64": 1e-10}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_every_activation(conn: layerserve.Connection, dtype: str) -> None:
    x = np.random.default_rng(1).uniform(-4, 4, size=(3, 5)).astype(dtype)
    x[0, :] = [-30.0, -0.3, 0.0, 0.3, 30.0] if dtype != "float16" else [-8.0, -0.3, 0.0, 0.3, 8.0]
    for name, reference in REFERENCES.items():
        layer = conn.layers.Dense(5, activation=name)
        layer.build([None, 5], dtype=dtype)
        layer.set_weights([np.eye(5, dtype=dtype), np.zeros(5, dtype=dtype)])
        y = layer(x)
        assert y.dtype == np.dtype(dtype)
        want = reference(x.astype(np.float64))
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype],
                                   err_msg=name)
        expected_name = "swish" if name == "silu" else name
        assert layer.get_config()["activation"] == expected_name


def test_unknown_activation_is_tf_value_error(conn: layerserve.Connection) -> None:
    with pytest.raises(ValueError, match=r"Unknown activation function 'bogus' cannot be deserialized\."):
        conn.layers.Dense(2, activation="bogus")
