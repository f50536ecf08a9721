"""Every error the service reports, with its HTTP status and stable code.

Domain code raises these; the API layer turns them into the contract's error body
``{"error": {"code", "message", "details"}}``. ``details["exception"]`` names the Python
exception TensorFlow raises in the same situation, so the client can raise the same type.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AmbiguousName",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IncompatibleInput",
    "InvalidArgument",
    "LayerServeError",
    "NotFound",
    "PayloadTooLarge",
    "ProcessingTimeout",
    "RequestTimeout",
    "ServiceUnavailable",
    "StoreUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "VariableScopeError",
]


class LayerServeError(Exception):
    status = 500
    code = "internal"
    exception = "RuntimeError"
    retry_after_s: int | None = None  # 503s: when a retry may succeed (sent as Retry-After)

    def __init__(self, message: str, *, code: str | None = None, exception: str | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if exception is not None:
            self.exception = exception
        self.details = details

    @property
    def headers(self) -> dict[str, str] | None:
        """Response headers the error carries: ``Retry-After`` on the retryable ones."""
        return None if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}

    def body(self) -> dict[str, Any]:
        details = {"exception": self.exception, **self.details}
        return {"error": {"code": self.code, "message": self.message, "details": details}}


class BadRequest(LayerServeError):
    """The request could not be read at all (malformed JSON or frame)."""

    status, code, exception = 400, "malformed_request", "ValueError"


class Unauthorized(LayerServeError):
    status, code, exception = 401, "unauthorized", "PermissionError"


class NotFound(LayerServeError):
    status, code, exception = 404, "not_found", "LookupError"


class Conflict(LayerServeError):
    """The request is valid but does not fit the layer's current state."""

    status, code, exception = 409, "conflict", "ValueError"


class AmbiguousName(Conflict):
    code = "ambiguous_name"


class IncompatibleInput(Conflict):
    """An input that the layer's input_spec, dtype or built shape rejects."""

    code = "incompatible_input"


class VariableScopeError(Conflict):
    """TF's variable store refused: the variable exists without reuse, or is missing with it."""

    code = "variable_scope"


class PayloadTooLarge(LayerServeError):
    status, code, exception = 413, "payload_too_large", "ValueError"


class UnsupportedMediaType(LayerServeError):
    status, code, exception = 415, "unsupported_media_type", "ValueError"


class InvalidArgument(LayerServeError):
    """Valid JSON carrying a value TensorFlow (or the contract) rejects."""

    status, code, exception = 422, "invalid_argument", "ValueError"


class StoreUnavailable(LayerServeError):
    """The state store cannot be reached, is too busy, or could not write: the operation was
    not applied; retry later."""

    status, code, exception = 503, "store_unavailable", "ConnectionError"
    retry_after_s = 1


class Forbidden(LayerServeError):
    """A valid token that is not allowed on this graph."""

    status, code, exception = 403, "forbidden", "PermissionError"


class RequestTimeout(LayerServeError):
    """The request body did not arrive within the request timeout."""

    status, code, exception = 408, "request_timeout", "TimeoutError"


class ProcessingTimeout(LayerServeError):
    """The request took longer than the request timeout to answer; it may still complete."""

    status, code, exception = 503, "processing_timeout", "TimeoutError"
    retry_after_s = 1


class ServiceUnavailable(LayerServeError):
    """The server is starting (state not loaded yet) or shutting down."""

    status, code, exception = 503, "not_ready", "RuntimeError"
    retry_after_s = 1
