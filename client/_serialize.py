"""Constructor arguments to JSON: what a TF1 call site passes, as the server reads it."""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve._foreign import activation_name, config_object, is_config_object

__all__ = ["dtype_name", "to_wire"]


def dtype_name(dtype: Any) -> str | None:
    """None, a numpy dtype or type, a TF DType (``.name``), or a name string."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None)
    if isinstance(name, str) and not isinstance(dtype, type):
        return name
    return str(np.dtype(dtype).name)


def to_wire(value: Any, what: str = "argument") -> Any:
    """A constructor argument as JSON: plain values, arrays (as nested lists), our initializer and
    regularizer objects, TF's and Keras' (by class name and ``get_config()``), activation functions
    by name, dtypes by name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_wire(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): to_wire(v, what) for k, v in value.items()}
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if isinstance(value, np.dtype) or hasattr(value, "as_numpy_dtype"):
        return dtype_name(value)
    if is_config_object(value):
        return to_wire(config_object(value), what)
    if callable(value) and what.endswith("activation"):
        return activation_name(value, what)
    if callable(value):
        raise TypeError(f"{what}: layerserve cannot send a Python callable ({value!r}) to its server. Accepted: "
                        "a name such as 'glorot_uniform' or 'l2', a layerserve.initializers/regularizers object, or "
                        "a TensorFlow/Keras initializer or regularizer object (read through get_config())")
    raise TypeError(f"{what}: cannot send a value of type {type(value).__name__} to the server")
