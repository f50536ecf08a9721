"""Float dtypes the layers compute in, and TensorFlow's checks on input dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve.server.errors import InvalidArgument

__all__ = ["FLOAT_DTYPES", "check_float_input", "dtype_name", "normalize_dtype"]

FLOAT_DTYPES = ("float16", "float32", "float64")
_ALIASES = {"half": "float16", "float": "float32", "double": "float64"}


_NAMES: dict[np.dtype[Any], str] = {}


def dtype_name(dtype: np.dtype[Any]) -> str:
    """``dtype.name``, remembered: numpy computes that property in Python (1-2 us a call),
    and an apply asks for it several times."""
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name
    return name


def normalize_dtype(value: object) -> str | None:
    """A layer's ``dtype`` argument: None or a float dtype name (TF's DType names accepted)."""
    if value is None:
        return None
    name = str(value)
    if name.startswith("<dtype: '") and name.endswith("'>"):
        name = name[9:-2]
    name = _ALIASES.get(name, name)
    if name not in FLOAT_DTYPES:
        raise InvalidArgument(
            f"dtype {value!r} is not supported: layers compute in {', '.join(FLOAT_DTYPES)}",
            code="unsupported_dtype", exception="TypeError")
    return name


def check_float_input(array: np.ndarray, class_name: str) -> None:
    """Integer, bool and complex inputs are rejected, as TF rejects them for float layers."""
    if dtype_name(array.dtype) in FLOAT_DTYPES:
        return
    if class_name == "Dense":
        message = f"A Dense layer can only be built with a floating-point dtype. Received: dtype=<dtype: '{array.dtype}'>"
    else:
        message = (f"{class_name} layers accept float16, float32 and float64 inputs; "
                   f"received {array.dtype.name}")
    raise InvalidArgument(message, code="unsupported_dtype", exception="TypeError")
