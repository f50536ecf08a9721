"""Keras' regularizers by the same names: ``L1``, ``L2``, ``L1L2``, ``l1``, ``l2``, ``l1_l2``.

They travel to the server as ``{"class_name", "config"}``; calling one evaluates it locally
with numpy (``l2(w) = l2 * sum(w**2)``, no 1/2 factor), as TF does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "l1", "l1_l2", "l2"]


class Regularizer:
    class_name = "Regularizer"

    def get_config(self) -> dict[str, float]:
        raise NotImplementedError

    def to_wire(self) -> dict[str, Any]:
        return {"class_name": self.class_name, "config": self.get_config()}

    def __call__(self, x: Any) -> np.ndarray:
        config, w = self.get_config(), np.asarray(x)
        total = config.get("l1", 0.0) * np.sum(np.abs(w)) + config.get("l2", 0.0) * np.sum(np.square(w))
        return np.asarray(total, dtype=w.dtype if w.dtype.kind == "f" else np.float32)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularizer) and self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash(repr(self))


class L1L2(Regularizer):
    class_name = "L1L2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = float(l1), float(l2)

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    class_name = "L1"

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = float(l1)

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1}


class L2(Regularizer):
    class_name = "L2"

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = float(l2)

    def get_config(self) -> dict[str, float]:
        return {"l2": self.l2}


l1 = L1
l2 = L2


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1=l1, l2=l2)


def get(identifier: Any) -> Regularizer | None:
    """Keras' lookup: None, a Regularizer, 'l1'/'l2'/'l1_l2', or a ``{"class_name", "config"}`` dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        found = {"l1": L1(), "l2": L2(), "l1_l2": l1_l2()}.get(identifier.lower())
        if found is not None:
            return found
    if isinstance(identifier, dict) and identifier.get("class_name") in ("L1", "L2", "L1L2"):
        cls = {"L1": L1, "L2": L2, "L1L2": L1L2}[identifier["class_name"]]
        return cls(**identifier.get("config", {}))
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
