"""Every failure leaves as one error body, never HTML and never a bare 500: the contract's
``{"error": {"code", "message", "details"}}``, or on the Open Inference Protocol's routes
(``/v2``) that protocol's ``{"error": "<message>"}``, which its clients parse. ``error_reply``
is the one renderer: the middleware, the fast handlers and FastAPI's handlers all use it."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from layerserve.server.api.wire import JSON_TYPE, Reply
from layerserve.server.errors import LayerServeError

__all__ = ["error_reply", "install_error_handlers", "send_error"]

log = logging.getLogger("layerserve.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}


def error_reply(exc: LayerServeError, path: str, headers: dict[str, str] | None = None) -> Reply:
    """``exc`` as the body of the route at ``path`` (native, or OIP on ``/v2``)."""
    payload: Any = {"error": exc.message} if path.startswith("/v2") else exc.body()
    extra = {**(getattr(exc, "headers", None) or {}), **(headers or {})}
    return Reply(exc.status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), JSON_TYPE, extra or None)


async def send_error(scope: Scope, send: Send, exc: LayerServeError, headers: dict[str, str] | None = None) -> None:
    """``error_reply`` as a complete ASGI response."""
    await send_reply(send, error_reply(exc, scope["path"], headers))


async def send_reply(send: Send, reply: Reply) -> None:
    """A reply as one ``http.response.start`` and one ``http.response.body``."""
    head = [(b"content-length", str(len(reply.body)).encode()), (b"content-type", reply.content_type.encode())]
    if reply.headers:
        head += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": head})
    await send({"type": "http.response.body", "body": reply.body})


def _error(status: int, code: str, message: str, path: str, *, exception: str,
           headers: dict[str, str] | None = None, **details: object) -> Response:
    exc = LayerServeError(message, code=code, exception=exception, **details)
    exc.status = status
    return error_reply(exc, path, headers).response()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LayerServeError)
    async def _domain(request: Request, exc: LayerServeError) -> Response:
        return error_reply(exc, request.url.path).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return _error(422, "invalid_request", f"invalid request: {first['loc']}: {first['msg']}", request.url.path,
                      exception="ValueError", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), request.url.path, exception="LookupError",
                      headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal", f"internal error: {type(exc).__name__}", request.url.path,
                      exception="RuntimeError")
