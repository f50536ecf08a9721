"""TF1's initializer objects: sent to the server for a layer's variables, evaluated here (numpy)
for ``get_variable``'s initial value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from layerserve import initializers as base
from layerserve.compat.v1.dtypes import as_dtype

__all__ = ["constant_initializer", "glorot_normal_initializer", "glorot_uniform_initializer", "he_normal",
           "he_uniform", "ones_initializer", "random_normal_initializer", "random_uniform_initializer",
           "truncated_normal_initializer", "variance_scaling_initializer", "zeros_initializer", "constant",
           "glorot_normal", "glorot_uniform", "ones", "random_normal", "random_uniform", "truncated_normal",
           "variance_scaling", "zeros"]


def _np(dtype: Any) -> Any:
    return np.dtype(as_dtype(dtype or "float32").as_numpy_dtype)


class zeros_initializer(base.Zeros):
    _wire_class = "Zeros"

    def __init__(self, dtype: Any = None) -> None:
        super().__init__()

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        return np.zeros(tuple(shape), _np(dtype))


class ones_initializer(base.Ones):
    _wire_class = "Ones"

    def __init__(self, dtype: Any = None) -> None:
        super().__init__()

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        return np.ones(tuple(shape), _np(dtype))


class constant_initializer(base.Constant):
    _wire_class = "Constant"

    """A scalar fills the shape; an array (or list) gives the values, reshaped."""

    def __init__(self, value: Any = 0, dtype: Any = None, verify_shape: bool = False) -> None:
        array = np.asarray(value)
        super().__init__(value=array.item() if array.ndim == 0 else array.tolist())
        self._array = array

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        dims = tuple(int(d) for d in shape)
        if self._array.ndim == 0:
            return np.full(dims, self._array, _np(dtype))
        if self._array.size != int(np.prod(dims)):
            raise TypeError(f"Eager execution of tf.constant with unsupported shape. Tensor {self._array.tolist()} "
                            f"(converted from {self._array.tolist()}) has {self._array.size} elements, but got "
                            f"`shape` {dims} with {int(np.prod(dims))} elements).")
        return self._array.astype(_np(dtype)).reshape(dims)


class random_normal_initializer(base.RandomNormal):
    _wire_class = "RandomNormal"

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None, dtype: Any = None) -> None:
        super().__init__(mean=mean, stddev=stddev, seed=seed)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        c = self.get_config()
        rng = np.random.default_rng(c["seed"])
        return rng.normal(c["mean"], c["stddev"], tuple(shape)).astype(_np(dtype))


class truncated_normal_initializer(base.TruncatedNormal):
    _wire_class = "TruncatedNormal"

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None, dtype: Any = None) -> None:
        super().__init__(mean=mean, stddev=stddev, seed=seed)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        c = self.get_config()
        return _truncated(np.random.default_rng(c["seed"]), c["mean"], c["stddev"], tuple(shape)).astype(_np(dtype))


class random_uniform_initializer(base.RandomUniform):
    _wire_class = "RandomUniform"

    def __init__(self, minval: float = 0.0, maxval: float = 1.0, seed: int | None = None, dtype: Any = None) -> None:
        super().__init__(minval=minval, maxval=maxval, seed=seed)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        c = self.get_config()
        rng = np.random.default_rng(c["seed"])
        return rng.uniform(c["minval"], c["maxval"], tuple(shape)).astype(_np(dtype))


def _truncated(rng: np.random.Generator, mean: float, std: float, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.normal(mean, std, shape)
    bad = np.abs(out - mean) > 2 * std
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = np.abs(out - mean) > 2 * std
    return out


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


class _Scaling:
    _scale, _mode, _uniform = 1.0, "fan_avg", True

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> np.ndarray:
        dims = tuple(int(d) for d in shape)
        rng = np.random.default_rng(self.get_config().get("seed"))  # type: ignore[attr-defined]
        fan_in, fan_out = _fans(dims)
        scale = self._scale / max(1.0, {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[
            self._mode])
        if self._uniform:
            limit = math.sqrt(3.0 * scale)
            return rng.uniform(-limit, limit, dims).astype(_np(dtype))
        return _truncated(rng, 0.0, math.sqrt(scale) / 0.87962566103423978, dims).astype(_np(dtype))


class glorot_uniform_initializer(_Scaling, base.GlorotUniform):
    _wire_class = "GlorotUniform"

    def __init__(self, seed: int | None = None, dtype: Any = None) -> None:
        base.GlorotUniform.__init__(self, seed=seed)


class glorot_normal_initializer(_Scaling, base.GlorotNormal):
    _wire_class = "GlorotNormal"

    _uniform = False

    def __init__(self, seed: int | None = None, dtype: Any = None) -> None:
        base.GlorotNormal.__init__(self, seed=seed)


class he_normal(_Scaling, base.HeNormal):
    _wire_class = "HeNormal"

    _scale, _mode, _uniform = 2.0, "fan_in", False

    def __init__(self, seed: int | None = None) -> None:
        base.HeNormal.__init__(self, seed=seed)


class he_uniform(_Scaling, base.HeUniform):
    _wire_class = "HeUniform"

    _scale, _mode = 2.0, "fan_in"

    def __init__(self, seed: int | None = None) -> None:
        base.HeUniform.__init__(self, seed=seed)


def variance_scaling_initializer(scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                                 seed: int | None = None, dtype: Any = None) -> Any:
    init = glorot_uniform_initializer(seed) if distribution == "uniform" else glorot_normal_initializer(seed)
    init._scale, init._mode = scale, mode
    return init


# ``tf.initializers``' names for the same objects.
zeros, ones, constant = zeros_initializer, ones_initializer, constant_initializer
random_normal, random_uniform, truncated_normal = (random_normal_initializer, random_uniform_initializer,
                                                   truncated_normal_initializer)
glorot_uniform, glorot_normal, variance_scaling = (glorot_uniform_initializer, glorot_normal_initializer,
                                                   variance_scaling_initializer)
