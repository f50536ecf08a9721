"""Keras ``InputSpec`` and its compatibility check, with TensorFlow's error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from layerserve.server.errors import IncompatibleInput

__all__ = ["InputSpec"]


@dataclass(frozen=True)
class InputSpec:
    ndim: int | None = None
    min_ndim: int | None = None
    max_ndim: int | None = None
    axes: dict[int, int] = field(default_factory=dict)
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("ndim", "min_ndim", "max_ndim", "dtype"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.axes:
            out["axes"] = {str(k): v for k, v in self.axes.items()}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> InputSpec | None:
        if data is None:
            return None
        shape = data.get("shape")
        return cls(data.get("ndim"), data.get("min_ndim"), data.get("max_ndim"),
                   {int(k): int(v) for k, v in (data.get("axes") or {}).items()},
                   data.get("dtype"), tuple(shape) if shape is not None else None)

    def check(self, shape: tuple[int | None, ...], dtype: str, layer_name: str, index: int = 0) -> None:
        """Raise TF's ValueError (as IncompatibleInput) when input ``index`` does not fit."""
        prefix = f'Input {index} of layer "{layer_name}" is incompatible with the layer: '
        full = f"Full shape received: {tuple(shape)}"
        rank = len(shape)
        if self.ndim is not None and rank != self.ndim:
            raise IncompatibleInput(prefix + f"expected ndim={self.ndim}, found ndim={rank}. {full}")
        if self.max_ndim is not None and rank > self.max_ndim:
            raise IncompatibleInput(prefix + f"expected max_ndim={self.max_ndim}, found ndim={rank}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise IncompatibleInput(prefix + f"expected min_ndim={self.min_ndim}, found ndim={rank}. {full}")
        if self.dtype is not None and dtype != self.dtype:
            raise IncompatibleInput(prefix + f"expected dtype={self.dtype}, found dtype=<dtype: '{dtype}'>")
        for axis, value in self.axes.items():
            if not -rank <= axis < rank or shape[axis] not in (value, None):
                raise IncompatibleInput(
                    prefix + f"expected axis {axis} of input shape to have value {value}, "
                    f"but received input with shape {tuple(shape)}")
        if self.shape is not None and any(
                s is not None and s != d for s, d in zip(self.shape, shape)):
            raise IncompatibleInput(
                prefix + f"expected shape={tuple(self.shape)}, found shape={tuple(shape)}")
