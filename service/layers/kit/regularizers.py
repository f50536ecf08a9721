"""Keras weight and activity regularizers: L1, L2 and L1L2 (no 1/2 factor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from layerserve.server.errors import InvalidArgument

__all__ = ["Regularizer", "parse_regularizer"]

_STRING_FORMS = {"l1": (0.01, None), "l2": (None, 0.01), "l1_l2": (0.01, 0.01)}
_CLASS_KEYS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}


def _f32(value: float) -> float:
    # Keras keeps the factors as float32 (`backend.cast_to_floatx`).
    return float(np.float32(value))


@dataclass(frozen=True)
class Regularizer:
    class_name: str  # "L1", "L2" or "L1L2"
    l1: float = 0.0
    l2: float = 0.0

    def __call__(self, value: np.ndarray) -> np.ndarray:
        """The loss as TF computes it: ``l1 * sum(|x|) + 2 * l2 * l2_loss(x)`` in the value's dtype.
        Element-wise steps stay in that dtype (so float16 squares overflow to inf as in TF); sums
        accumulate in at least float32 and are cast back, as TF's CPU reductions do."""
        dtype = value.dtype.type
        acc = np.float32 if value.dtype == np.float16 else value.dtype
        total = dtype(0)
        if self.class_name in ("L1", "L1L2"):
            total = dtype(total + dtype(self.l1) * dtype(np.sum(np.abs(value), dtype=acc)))
        if self.class_name in ("L2", "L1L2"):
            l2_loss = dtype(np.sum(np.square(value) * dtype(0.5), dtype=acc))
            total = dtype(total + dtype(2.0 * np.float32(self.l2)) * l2_loss)
        return np.asarray(total, dtype=value.dtype)

    def to_json(self) -> dict[str, float]:
        keys = _CLASS_KEYS[self.class_name]
        return {k: getattr(self, k) for k in keys}

    def get_config(self) -> dict[str, Any]:
        return {"module": "keras.regularizers", "class_name": self.class_name,
                "config": self.to_json(), "registered_name": None}


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InvalidArgument(f"{what} must be a finite number, got {value!r}", code="invalid_regularizer")
    if value < 0:
        raise InvalidArgument(f"{what} must be non-negative, got {value!r}", code="invalid_regularizer")
    return _f32(value)


def _from_factors(l1: object, l2: object, what: str) -> Regularizer:
    if l1 is not None and l2 is not None:
        return Regularizer("L1L2", _number(l1, f"{what}.l1"), _number(l2, f"{what}.l2"))
    if l1 is not None:
        return Regularizer("L1", l1=_number(l1, f"{what}.l1"))
    return Regularizer("L2", l2=_number(l2, f"{what}.l2"))


def parse_regularizer(value: object, what: str) -> Regularizer | None:
    """Accepts ``{"l1": a}``, ``{"l2": b}``, ``{"l1": a, "l2": b}``, 'l1'/'l2'/'l1_l2', or a Keras config dict."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in _STRING_FORMS:
        return _from_factors(*_STRING_FORMS[value.lower()], what)
    if isinstance(value, dict) and "class_name" in value:
        name, config = value.get("class_name"), value.get("config") or {}
        if name not in _CLASS_KEYS or not isinstance(config, dict) or set(config) - set(_CLASS_KEYS[str(name)]):
            raise InvalidArgument(f"{what}: unknown regularizer {value!r}", code="invalid_regularizer")
        return Regularizer(str(name), *(_number(config.get(k, 0.0), what) for k in ("l1", "l2")))
    if isinstance(value, dict) and value and set(value) <= {"l1", "l2"}:
        return _from_factors(value.get("l1"), value.get("l2"), what)
    raise InvalidArgument(
        f"{what} must be null, 'l1', 'l2', 'l1_l2' or {{\"l1\": a, \"l2\": b}}, got {value!r}",
        code="invalid_regularizer")
