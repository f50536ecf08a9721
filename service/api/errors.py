"""Every failure leaves as the contract's JSON error body, never HTML and never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from layerserve.server.api.wire import json_response
from layerserve.server.errors import LayerServeError

__all__ = ["install_error_handlers"]

log = logging.getLogger("layerserve.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}


def error_response(status: int, code: str, message: str, **details: object) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": details}}, status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LayerServeError)
    async def _domain(request: Request, exc: LayerServeError) -> Response:
        return json_response(exc.body(), exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return error_response(422, "invalid_request", f"invalid request: {first['loc']}: {first['msg']}",
                              exception="ValueError", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path == "/v2" or request.url.path.startswith("/v2/"):  # the protocol's own body
            return json_response({"error": str(exc.detail)}, exc.status_code, headers=dict(exc.headers or {}))
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exception="LookupError")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}", exception="RuntimeError")
