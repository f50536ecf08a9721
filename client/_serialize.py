"""Constructor arguments to JSON: what a TF1 call site passes, as the server reads it."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_wire(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): to_wire(v, what) for k, v in value.items()}
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if isinstance(value, np.dtype) or hasattr(value, "as_numpy_dtype"):
        return dtype_name(value)
    if callable(value):
        raise TypeError(f"{what}: layerserve runs layers on a server and cannot send a Python callable "
                        f"({value!r}); use a name such as 'relu' or a layerserve.regularizers/initializers object")
    raise TypeError(f"{what}: cannot send a value of type {type(value).__name__} to the server")
