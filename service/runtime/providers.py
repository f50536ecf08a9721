"""Execution providers: what was asked for, what this ONNX Runtime build has, what is active.

"Available" is not enough: ``onnxruntime-gpu`` lists CUDA on a machine without a GPU and then
falls back to CPU with only a warning. So the selection makes one tiny probe session with the
requested providers and options and keeps what that session really got.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort
from onnx import TensorProto, helper

from layerserve.server.runtime.provider_options import ProviderOptionError, device_id_of, normalize_options

__all__ = ["DEVICE_PROVIDERS", "PROVIDER_NAMES", "ProviderError", "ProviderSelection", "select_providers"]

log = logging.getLogger("layerserve.runtime")

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
SHORT_NAMES = {v: k for k, v in PROVIDER_NAMES.items()}
# Providers whose memory OrtValues can live in (as ONNX Runtime's Python API names the device).
DEVICE_PROVIDERS = {"cuda": "cuda", "tensorrt": "cuda"}


class ProviderError(RuntimeError):
    """The requested providers cannot be used as configured: a start-up error."""


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
        """Where variables can stay resident: 'cuda' when a CUDA provider leads, else 'cpu'."""
        return DEVICE_PROVIDERS.get(self.active[0], "cpu") if self.active else "cpu"

    @property
    def device_id(self) -> int:
        return device_id_of(self.options, self.active[0]) if self.device != "cpu" else 0


def _probe_model() -> bytes:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString())


def _preload_device_libraries(requested: list[str]) -> None:
    """The GPU wheel's CUDA/cuDNN come from PyPI packages that must be loaded before a session."""
    if any(p in DEVICE_PROVIDERS for p in requested) and hasattr(ort, "preload_dlls") \
            and PROVIDER_NAMES["cuda"] in ort.get_available_providers():
        try:
            ort.preload_dlls()
        except Exception as exc:  # the libraries may come from the system instead
            log.warning("onnxruntime.preload_dlls() failed (%s); relying on system CUDA libraries", exc)


def _session_providers(candidates: list[str], options: dict[str, dict[str, str]]) -> list[str]:
    """The providers a real session gets for ``candidates``, as short names."""
    providers = [(PROVIDER_NAMES[p], options.get(p, {})) for p in candidates]
    try:
        session = ort.InferenceSession(_probe_model(), providers=providers)
    except Exception as exc:  # bad option values surface here
        raise ProviderError(f"ONNX Runtime rejected the providers {candidates} with options {options}: {exc}") from exc
    return [SHORT_NAMES[name] for name in session.get_providers() if name in SHORT_NAMES]


def select_providers(requested: list[str], options: dict[str, dict[str, Any]] | None = None,
                     *, require: bool = False) -> ProviderSelection:
    """Keep the requested providers a session really gets, in order; say loudly what is missing."""
    unknown = [p for p in requested if p not in PROVIDER_NAMES]
    if unknown or not requested:
        raise ProviderError(f"unknown execution provider(s) {unknown or requested}; known: {', '.join(PROVIDER_NAMES)}")
    try:
        normalized = normalize_options(options or {}, PROVIDER_NAMES)
    except ProviderOptionError as exc:
        raise ProviderError(f"invalid provider options: {exc}") from None
    _preload_device_libraries(requested)
    available = set(ort.get_available_providers())
    candidates = [p for p in requested if PROVIDER_NAMES[p] in available]
    if "cpu" not in candidates:
        candidates.append("cpu")  # ONNX Runtime always needs the CPU provider as the fallback
    got = set(_session_providers(candidates, normalized))
    active = [p for p in candidates if p in got]
    missing = [p for p in requested if p not in got]
    if missing:
        message = (f"execution provider(s) {', '.join(missing)} requested but not usable here "
                   f"(this onnxruntime {ort.__version__} build has {', '.join(sorted(available))}; "
                   f"a listed GPU provider without a working device falls back to CPU)")
        if require:
            raise ProviderError(message + "; --require-providers makes this an error")
        log.warning("%s; continuing with %s", message, ", ".join(active))
    return ProviderSelection(tuple(requested), tuple(active), tuple(missing),
                             {p: v for p, v in normalized.items() if p in active})
