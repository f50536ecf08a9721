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
    "ConflictError",
    "InvalidArgumentError",
    "LayerServeError",
    "LayerTypeError",
    "NotFoundError",
    "NotReadyError",
    "ProcessingTimeoutError",
    "ServerError",
    "StoreUnavailableError",
    "TransportError",
    "UnavailableError",
    "error_from_body",
]


class LayerServeError(Exception):
    """Base of every layerserve error."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 details: dict[str, Any] | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}
        self.request_id = request_id  # the X-Request-ID of the call (the server's logs carry it too)


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


class ConflictError(InvalidArgumentError):
    """409 ``version_conflict`` (``If-Match`` named an older version) or ``write_conflict`` (another
    replica kept winning the race): read again and retry. Still a ``ValueError``, as TF code expects."""


class ServerError(LayerServeError, RuntimeError):
    """The server failed on its side."""


class UnavailableError(ServerError):
    """503: the server cannot serve the call now but may soon (``retry_after`` seconds, from the
    server's ``Retry-After``). Idempotent calls were already retried a few times."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after: float | None = retry_after


class NotReadyError(UnavailableError):
    """503 ``not_ready``: the server is starting (its state is not loaded yet)."""


class StoreUnavailableError(UnavailableError, ConnectionError):
    """503 ``store_unavailable``: the state store could not be reached or written; nothing was applied."""


class ProcessingTimeoutError(UnavailableError, TimeoutError):
    """503 ``processing_timeout``: the call took longer than the server's request timeout; it may
    still complete on the server."""


_BY_EXCEPTION: dict[str, type[LayerServeError]] = {
    "ValueError": InvalidArgumentError,
    "TypeError": LayerTypeError,
    "LookupError": NotFoundError,
    "PermissionError": AuthenticationError,
    # TensorFlow's own error types (tf.errors), where the server names them: checkpoints' restore
    "NotFoundError": NotFoundError,
    "InvalidArgumentError": InvalidArgumentError,
}


_UNAVAILABLE: dict[str, type[UnavailableError]] = {
    "not_ready": NotReadyError,
    "store_unavailable": StoreUnavailableError,
    "store_busy": StoreUnavailableError,
    "processing_timeout": ProcessingTimeoutError,
}
CONFLICT_CODES = frozenset({"version_conflict", "write_conflict"})


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (an HTTP date is not sent by the server, so it is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from_body(status: int, body: object, headers: dict[str, str] | None = None) -> LayerServeError:
    """The exception for an error response (the contract's ``{"error": {...}}`` body)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    request_id = headers.get("x-request-id")
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        message = error if isinstance(error, str) else f"HTTP {status} without an error body"
        error = {"message": message, "code": "error"}
    details = error.get("details") or {}
    message = str(error.get("message", f"HTTP {status}"))
    code = str(error.get("code", "error"))
    if status == 503:
        unavailable = _UNAVAILABLE.get(code, UnavailableError)
        return unavailable(message, code=code, status=status, details=details, request_id=request_id,
                           retry_after=_retry_after(headers.get("retry-after")))
    if status == 404:
        cls: type[LayerServeError] = NotFoundError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 409 and code in CONFLICT_CODES:
        cls = ConflictError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_EXCEPTION.get(str(details.get("exception")), InvalidArgumentError)
    return cls(message, code=code, status=status, details=details, request_id=request_id)
