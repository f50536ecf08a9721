"""Keras initializers by name or config, producing numpy values (seeded ones reproducibly).

TensorFlow's random streams cannot be reproduced bit for bit; the distributions and their
parameters are TF's. Users who need TF's exact values set them with ``set_weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerserve.server.errors import InvalidArgument

__all__ = ["Initializer", "parse_initializer"]

_CLASS_NAMES = {
    "zeros": "Zeros", "ones": "Ones", "constant": "Constant",
    "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
    "truncated_normal": "TruncatedNormal", "glorot_uniform": "GlorotUniform",
    "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform", "he_normal": "HeNormal",
    "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "Zeros": {}, "Ones": {}, "Constant": {"value": 0.0},
    "RandomNormal": {"mean": 0.0, "stddev": 0.05, "seed": None},
    "RandomUniform": {"minval": -0.05, "maxval": 0.05, "seed": None},
    "TruncatedNormal": {"mean": 0.0, "stddev": 0.05, "seed": None},
}
# Variance-scaling family: (scale, mode, distribution).
_SCALING = {
    "GlorotUniform": (1.0, "fan_avg", "uniform"), "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
    "HeUniform": (2.0, "fan_in", "uniform"), "HeNormal": (2.0, "fan_in", "truncated_normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"), "LecunNormal": (1.0, "fan_in", "truncated_normal"),
}


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated(rng: np.random.Generator, mean: float, std: float, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.normal(mean, std, size=shape)
    bad = np.abs(out - mean) > 2 * std
    while bad.any():
        out[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = np.abs(out - mean) > 2 * std
    return out


@dataclass(frozen=True)
class Initializer:
    class_name: str
    config: dict[str, Any] = field(default_factory=dict)

    def __call__(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        c = self.config
        rng = np.random.default_rng(c.get("seed"))
        if self.class_name == "Constant" and isinstance(c.get("value"), list):
            return _constant_array(c["value"], shape, dtype, pad=bool(c.get("pad")))
        if self.class_name in ("Zeros", "Ones", "Constant"):
            value = {"Zeros": 0.0, "Ones": 1.0}.get(self.class_name, c.get("value", 0.0))
            return np.full(shape, value, dtype=dtype)
        if self.class_name == "RandomNormal":
            return rng.normal(c["mean"], c["stddev"], size=shape).astype(dtype)
        if self.class_name == "RandomUniform":
            return rng.uniform(c["minval"], c["maxval"], size=shape).astype(dtype)
        if self.class_name == "TruncatedNormal":
            return _truncated(rng, c["mean"], c["stddev"], shape).astype(dtype)
        return self._variance_scaling(rng, shape).astype(dtype)

    def _variance_scaling(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        scale, mode, distribution = _SCALING[self.class_name]
        fan_in, fan_out = _fans(shape)
        scale /= max(1.0, {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode])
        if distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return rng.uniform(-limit, limit, size=shape)
        return _truncated(rng, 0.0, math.sqrt(scale) / 0.87962566103423978, shape)

    def get_config(self) -> dict[str, Any]:
        config = {k: v for k, v in self.config.items() if k != "pad"}
        if self.class_name in ("Zeros", "Ones", "Constant"):
            config["dtype"] = "float32"  # TF's v1 init ops report their default dtype
        return {"module": "keras.initializers", "class_name": self.class_name,
                "config": config, "registered_name": None}


def _constant_array(value: list[Any], shape: tuple[int, ...], dtype: str, *, pad: bool) -> np.ndarray:
    """An array-valued Constant: TF2's needs exactly the variable's element count; TF1's
    ``init_ops.Constant`` (``pad``) repeats its last element to fill the rest."""
    flat = np.asarray(value, dtype=dtype).reshape(-1)
    needed = math.prod(shape)
    if flat.size == needed:
        return flat.reshape(shape)
    if pad and 0 < flat.size < needed:
        return np.concatenate([flat, np.full(needed - flat.size, flat[-1], dtype=dtype)]).reshape(shape)
    if pad and flat.size > needed:
        raise InvalidArgument(f"Too many elements provided. Needed at most {needed}, but received {flat.size}",
                              code="invalid_initializer", exception="ValueError")
    got = tuple(np.asarray(value).shape)
    raise InvalidArgument(f"Expected Tensor's shape: {shape}, but got {got}.", code="invalid_initializer",
                          exception="TypeError")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _constant_value(value: object, what: str) -> object:
    """A Constant's value: a finite number, or a non-empty (nested, rectangular) list of them."""
    if _is_number(value):
        return value
    if isinstance(value, list):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            array = np.zeros(0)
        if array.size and np.isfinite(array).all():
            return value
    raise InvalidArgument(f"{what}: value must be a finite number or a non-empty array of them, got {value!r}",
                          code="invalid_initializer")


def _checked_config(class_name: str, given: dict[str, Any], what: str) -> dict[str, Any]:
    allowed = dict(_DEFAULTS.get(class_name, {"seed": None}))
    unknown = set(given) - set(allowed) - {"dtype", "verify_shape", "pad" if class_name == "Constant" else "dtype"}
    if unknown:
        raise InvalidArgument(f"{what}: {class_name} takes no argument {sorted(unknown)[0]!r}",
                              code="invalid_initializer", exception="TypeError")
    if class_name == "Constant":
        allowed["value"] = _constant_value(given.get("value", 0.0), what)
        # TF1's init_ops.Constant (its config names a dtype) fills a short array with its last element.
        allowed["pad"] = bool(given.get("pad", "dtype" in given and not given.get("verify_shape")))
        return allowed
    for key, value in given.items():
        if key == "verify_shape":
            continue
        if key == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{what}: seed must be a non-negative integer or null", code="invalid_initializer")
        elif key != "dtype" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                 or not math.isfinite(value)):
            raise InvalidArgument(f"{what}: {key} must be a finite number, got {value!r}", code="invalid_initializer")
        if key != "dtype":
            allowed[key] = value
    return allowed


def parse_initializer(value: object, what: str) -> Initializer | None:
    """A name ('glorot_uniform'), or ``{"class_name": "Constant", "config": {"value": 0.5}}``."""
    if value is None:
        return None
    class_name: str
    if isinstance(value, str):
        class_name = _CLASS_NAMES.get(value.lower(), value)
        config: object = {}
    elif isinstance(value, dict) and isinstance(value.get("class_name"), str):
        class_name = str(_CLASS_NAMES.get(value["class_name"].lower(), value["class_name"]))
        config = value.get("config") or {}
    else:
        raise InvalidArgument(f"{what} must be an initializer name or {{\"class_name\", \"config\"}}",
                              code="invalid_initializer")
    if (class_name not in _DEFAULTS and class_name not in _SCALING) or not isinstance(config, dict):
        raise InvalidArgument(f"Unknown initializer: '{class_name}'", code="invalid_initializer")
    return Initializer(class_name, _checked_config(class_name, config, what))
