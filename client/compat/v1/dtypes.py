"""TF's dtypes as strings with TF's attributes (``tf.float32 == "float32"``)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

__all__ = ["DType", "as_dtype", "bool", "float16", "float32", "float64", "int32", "int64", "string"]

_TF_NAMES = {"float32": "float", "float64": "double", "float16": "half", "int32": "int32", "int64": "int64",
             "bool": "bool", "string": "string"}


class DType(str):
    """A dtype by its numpy name; ``as_numpy_dtype``, ``is_floating`` and ``base_dtype`` as TF's."""

    @property
    def name(self) -> str:
        return str(self)

    @property
    def as_numpy_dtype(self) -> Any:
        return np.dtype(object if self == "string" else str(self)).type

    @property
    def base_dtype(self) -> DType:
        return self

    @property
    def is_floating(self) -> builtins.bool:
        return self.startswith("float")

    @property
    def is_integer(self) -> builtins.bool:
        return self.startswith("int")

    @property
    def is_bool(self) -> builtins.bool:
        return self == "bool"

    @property
    def tf_name(self) -> str:
        """How TF's error texts spell it (``float`` for float32)."""
        return _TF_NAMES.get(str(self), str(self))

    def __repr__(self) -> str:
        return f"tf.{self}"

    def __eq__(self, other: object) -> builtins.bool:
        try:
            return str.__eq__(self, str(as_dtype(other)))
        except TypeError:
            return False

    def __hash__(self) -> int:
        return str.__hash__(self)


builtins_bool = builtins.bool

float16, float32, float64 = DType("float16"), DType("float32"), DType("float64")
int32, int64 = DType("int32"), DType("int64")
bool = DType("bool")
string = DType("string")


def as_dtype(value: Any) -> DType:
    """A DType from a DType, a name, a numpy dtype or type, or a Python type."""
    if isinstance(value, DType):
        return value
    if value is builtins_bool:
        return bool
    if value is float:
        return float32
    if value is int:
        return int32
    if isinstance(value, str) and value in ("float", "double", "half"):
        return DType({"float": "float32", "double": "float64", "half": "float16"}[value])
    try:
        dt = np.dtype(getattr(value, "as_numpy_dtype", value))
    except TypeError:
        raise TypeError(f"Cannot convert {value!r} to a dtype.") from None
    if dt.kind in "USO":
        return string
    return DType(dt.name)
