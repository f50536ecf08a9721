"""Execution providers: what was asked for, what this ONNX Runtime build has, what is active."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort

__all__ = ["PROVIDER_NAMES", "ProviderSelection", "select_providers"]

log = logging.getLogger("layerserve.runtime")

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}


@dataclass(frozen=True)
class ProviderSelection:
    requested: tuple[str, ...]
    active: tuple[str, ...]  # short names, in priority order
    missing: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ort_providers(self) -> list[tuple[str, dict[str, Any]]]:
        return [(PROVIDER_NAMES[p], dict(self.options.get(p, {}))) for p in self.active]

    @property
    def device(self) -> str:
        """Where variables can stay resident: 'cuda' when CUDA leads, else 'cpu'."""
        return "cuda" if self.active and self.active[0] == "cuda" else "cpu"


def select_providers(requested: list[str], options: dict[str, dict[str, Any]] | None = None,
                     require: bool = False) -> ProviderSelection:
    """Keep the requested providers this build has, in order; say loudly what is missing."""
    unknown = [p for p in requested if p not in PROVIDER_NAMES]
    if unknown:
        raise ValueError(f"unknown execution provider(s) {unknown}; known: {', '.join(PROVIDER_NAMES)}")
    available = set(ort.get_available_providers())
    active = [p for p in requested if PROVIDER_NAMES[p] in available]
    missing = [p for p in requested if PROVIDER_NAMES[p] not in available]
    if missing:
        message = (f"execution provider(s) {', '.join(missing)} requested but not available in this "
                   f"onnxruntime build (available: {', '.join(sorted(available))})")
        if require:
            raise RuntimeError(message)
        log.warning("%s; continuing with %s", message, ", ".join(active) or "cpu")
    if "cpu" not in active:
        active.append("cpu")  # ONNX Runtime always needs the CPU provider as the fallback
    return ProviderSelection(tuple(requested), tuple(active), tuple(missing), dict(options or {}))
