"""TensorFlow-free stand-ins for TF's own objects: the same function names, class names and
``get_config()`` as TensorFlow 2.21 gives them (checked against TF in tests/test_tf_objects.py
where TensorFlow is installed), so the client's handling of TF objects is tested everywhere."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

__all__ = ["AUTO_REUSE", "Constant", "GlorotUniform", "L1L2", "L2", "RandomUniform", "Zeros",
           "relu", "softmax_v2", "tanh"]


def relu(features: Any, name: str | None = None) -> Any:  # tf.nn.relu's __name__
    raise AssertionError("a TF function is never called by the client")


def tanh(x: Any, name: str | None = None) -> Any:  # tf.tanh / tf.nn.tanh
    raise AssertionError("a TF function is never called by the client")


def softmax_v2(logits: Any, axis: Any = None, name: str | None = None) -> Any:  # tf.nn.softmax
    raise AssertionError("a TF function is never called by the client")


class _ConfigObject:
    def __init__(self, **config: Any) -> None:
        self._config = config

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a TF initializer or regularizer is never called by the client")


class Constant(_ConfigObject):
    """tf.constant_initializer(value): init_ops_v2.Constant, config {'value': value}."""

    def __init__(self, value: Any = 0) -> None:
        super().__init__(value=value)


class Zeros(_ConfigObject):
    """tf.compat.v1.zeros_initializer(): init_ops.Zeros, config {'dtype': 'float32'}."""

    def __init__(self) -> None:
        super().__init__(dtype="float32")


class GlorotUniform(_ConfigObject):
    """tf.compat.v1.glorot_uniform_initializer(seed=...): config {'seed', 'dtype'}."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=seed, dtype="float32")


class RandomUniform(_ConfigObject):
    """tf.compat.v1.random_uniform_initializer(): maxval None (1 for floats)."""

    def __init__(self, minval: float = 0.0, maxval: float | None = None, seed: int | None = None) -> None:
        super().__init__(minval=minval, maxval=maxval, seed=seed, dtype="float32")


class L2(_ConfigObject):
    """tf.keras.regularizers.l2(0.01): config {'l2': float32(0.01) as a Python float}."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=float(np.float32(l2)))


class L1L2(_ConfigObject):
    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(l1=float(np.float32(l1)), l2=float(np.float32(l2)))


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE
