"""TF's ``InputSpec``: the rank, axes and dtype a layer accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["InputSpec"]


class InputSpec:
    """TF's ``InputSpec``: the rank, axes and dtype a layer accepts."""

    def __init__(self, dtype: str | None = None, shape: Sequence[int | None] | None = None,
                 ndim: int | None = None, max_ndim: int | None = None, min_ndim: int | None = None,
                 axes: dict[int, int] | None = None) -> None:
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> InputSpec:
        axes = {int(k): int(v) for k, v in (data.get("axes") or {}).items()}
        return cls(data.get("dtype"), data.get("shape"), data.get("ndim"), data.get("max_ndim"),
                   data.get("min_ndim"), axes)

    def __repr__(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("dtype", "shape", "ndim", "max_ndim", "min_ndim")
                 if getattr(self, k) is not None]
        if self.axes:
            parts.append(f"axes={self.axes}")
        return f"InputSpec({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputSpec) and vars(self) == vars(other)

    def _to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("ndim", "min_ndim", "max_ndim", "dtype")
                               if getattr(self, k) is not None}
        if self.axes:
            out["axes"] = {str(k): v for k, v in self.axes.items()}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out
