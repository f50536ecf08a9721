"""Whether ONNX Runtime, on the active providers, can load an uploaded model."""

from __future__ import annotations

import onnxruntime as ort

from layerserve.server.errors import InvalidArgument
from layerserve.server.runtime.sessions import SessionCache

__all__ = ["check_loadable", "clean_message"]


def clean_message(message: str) -> str:
    """ORT's message without the C++ source location and signature it sometimes starts with."""
    if "onnxruntime_src" in message and ") " in message:
        message = message.split(") ", 1)[1]
    return message.strip()[:600]


def check_loadable(sessions: SessionCache, models: list[bytes]) -> None:
    """Create (and drop) a session per model: unsupported ops, opsets or types fail here."""
    for model in models:
        try:
            sessions.session(model, uploaded=True)
        except Exception as exc:  # ORT raises its own exception types for every load failure
            providers = ", ".join(sessions.providers.active)
            raise InvalidArgument(
                f"custom layer config.model: ONNX Runtime {ort.__version__} cannot run it on the active "
                f"providers ({providers}): {clean_message(str(exc))}", code="unsupported_model",
                field="config.model") from None
