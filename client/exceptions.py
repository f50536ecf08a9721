"""Every exception the client raises.

Server errors keep the server's ``code``, ``status``, ``message`` and ``details``, and are
also instances of the built-in type TensorFlow raises in the same situation (``ValueError``
for bad shapes, ``TypeError`` for bad dtypes or unknown arguments, ...), so code written
against TensorFlow catches them unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "InvalidArgumentError",
    "LayerServeError",
    "LayerTypeError",
    "NotFoundError",
    "ServerError",
    "TransportError",
    "error_from_body",
]


class LayerServeError(Exception):
    """Base of every layerserve error."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}


class InvalidArgumentError(LayerServeError, ValueError):
    """TensorFlow raises ValueError here (bad shape, bad value, incompatible input)."""


class LayerTypeError(LayerServeError, TypeError):
    """TensorFlow raises TypeError here (bad dtype, unknown keyword argument)."""


class NotFoundError(LayerServeError, LookupError):
    """No such graph, layer or variable."""


class AuthenticationError(LayerServeError, PermissionError):
    """Missing or wrong bearer token."""


class TransportError(LayerServeError, ConnectionError):
    """The server could not be reached (after the retries idempotent calls get)."""


class ServerError(LayerServeError, RuntimeError):
    """The server failed on its side."""


_BY_EXCEPTION: dict[str, type[LayerServeError]] = {
    "ValueError": InvalidArgumentError,
    "TypeError": LayerTypeError,
    "LookupError": NotFoundError,
    "PermissionError": AuthenticationError,
    # TensorFlow's own error types (tf.errors), where the server names them: checkpoints' restore
    "NotFoundError": NotFoundError,
    "InvalidArgumentError": InvalidArgumentError,
}


def error_from_body(status: int, body: object) -> LayerServeError:
    """The exception for an error response (the contract's ``{"error": {...}}`` body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ServerError(f"HTTP {status} without an error body", status=status)
    details = error.get("details") or {}
    message = str(error.get("message", f"HTTP {status}"))
    code = str(error.get("code", "error"))
    if status == 404:
        cls: type[LayerServeError] = NotFoundError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_EXCEPTION.get(str(details.get("exception")), InvalidArgumentError)
    return cls(message, code=code, status=status, details=details)
