"""``tf.errors``: the OpError family, also instances of layerserve's error types."""

from __future__ import annotations

from typing import Any

from layerserve.exceptions import LayerServeError

__all__ = ["FailedPreconditionError", "InvalidArgumentError", "NotFoundError", "OpError", "OutOfRangeError",
           "ResourceExhaustedError", "UnimplementedError", "from_server"]


class OpError(LayerServeError):
    """TF's ``tf.errors.OpError``: ``node_def``, ``op`` and ``message`` as TF's."""

    def __init__(self, node_def: Any, op: Any, message: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, code=kwargs.pop("code", "error"), status=kwargs.pop("status", None),
                         details=kwargs.pop("details", None))
        self.node_def, self.op = node_def, op


class InvalidArgumentError(OpError, ValueError):
    pass


class NotFoundError(OpError, LookupError):
    pass


class FailedPreconditionError(OpError):
    pass


class OutOfRangeError(OpError):
    pass


class ResourceExhaustedError(OpError):
    pass


class UnimplementedError(OpError):
    pass


def from_server(error: LayerServeError) -> LayerServeError:
    """The OpError a server error stands for when the server says it is one, else the error itself."""
    op_error = (error.details or {}).get("op_error")
    types = {"InvalidArgumentError": InvalidArgumentError, "NotFoundError": NotFoundError,
             "FailedPreconditionError": FailedPreconditionError, "UnimplementedError": UnimplementedError}
    if op_error in types:
        return types[op_error](None, None, error.message, code=error.code, status=error.status, details=error.details)
    return error
