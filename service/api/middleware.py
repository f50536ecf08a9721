"""ASGI middleware around every route, outermost first:

- ``RequestContext``: request id (``X-Request-ID``, echoed or made), metrics, one JSON access
  log line per request, and the contract's error body for anything unhandled.
- ``BearerAuth``: ``Authorization: Bearer`` on every route but health (401, or 403 for a token
  limited to other graphs).
- ``RequestLimits``: readiness (503 until the store is loaded), graph and layer names in the
  path (422), body size (413 from ``Content-Length`` before any byte is read, and while
  streaming), and the request timeout (408 while the body is still arriving, else 503).

Pure ASGI, not ``BaseHTTPMiddleware``: bodies stream through untouched, and the limits act
before a route reads anything. Every request pays for this code, so it reads the raw header
list once, keeps its metric children (``ServiceMetrics.record``), builds the access log line
only when it is written, and times out with ``asyncio.timeout`` (no task of its own per request).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layerserve.server.api.auth import TokenRule, authorize, graph_of_path
from layerserve.server.config import Settings
from layerserve.server.core.naming import GRAPH_NAME, layer_ref_problem
from layerserve.server.errors import (
    Forbidden,
    InvalidArgument,
    LayerServeError,
    PayloadTooLarge,
    ProcessingTimeout,
    RequestTimeout,
    ServiceUnavailable,
    Unauthorized,
)
from layerserve.server.logs import request_id
from layerserve.server.metrics import ServiceMetrics

__all__ = ["BearerAuth", "RequestContext", "RequestLimits", "send_error"]

log = logging.getLogger("layerserve.http")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_NEEDS_STATE = ("/v1/graphs", "/v2/models")
_ERROR_SNIFF_BYTES = 65536


async def send_error(scope: Scope, send: Send, exc: LayerServeError,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A complete error response: the contract's body, or on the Open Inference Protocol's
    routes (``/v2``) that protocol's ``{"error": "<message>"}``, which its clients parse."""
    payload: Any = {"error": exc.message} if scope["path"].startswith("/v2") else exc.body()
    body = orjson.dumps(payload)
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra,
            *(headers or [])]
    await send({"type": "http.response.start", "status": exc.status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (ASGI names are lower case), as Starlette's ``get``."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _incoming_id(scope: Scope) -> str:
    given = _header(scope, _REQUEST_ID)
    return given if given is not None and _VALID_ID.fullmatch(given) else uuid.uuid4().hex


class _Exchange:
    """What one request did, as seen at the transport."""

    __slots__ = ("bytes_in", "bytes_out", "error_body", "started", "status")

    def __init__(self) -> None:
        self.status, self.started, self.bytes_in, self.bytes_out = 0, False, 0, 0
        self.error_body = b""

    def error_code(self) -> str:
        """The error body's code; bodies without one (the v2 protocol's) by their status."""
        try:
            return str(orjson.loads(self.error_body)["error"]["code"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return f"http_{self.status}"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        context = request_id.set(rid)
        seen = _Exchange()

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen.bytes_in += len(message.get("body", b""))
            return message

        tag = (_REQUEST_ID, rid.encode("latin-1"))

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status, seen.started = message["status"], True
                message["headers"] = [h for h in message.get("headers", ()) if h[0].lower() != _REQUEST_ID] + [tag]
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                seen.bytes_out += len(chunk)
                if seen.status >= 400 and len(seen.error_body) < _ERROR_SNIFF_BYTES:
                    seen.error_body += chunk
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self._guarded(scope, receive_counted, send_tagged, seen)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, seen, time.perf_counter() - start)
            request_id.reset(context)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, seen: _Exchange) -> None:
        """Run the app; an exception that escapes it still leaves as the contract's body."""
        try:
            await self.app(scope, receive, send)
        except LayerServeError as exc:
            if not seen.started:
                await send_error(scope, send, exc)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not seen.started:
                await send_error(scope, send, LayerServeError(f"internal error: {type(exc).__name__}"))

    def _record(self, scope: Scope, seen: _Exchange, seconds: float) -> None:
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"
        # No response at all: the client went away first (nginx's 499, "client closed request").
        method, status = scope["method"], seen.status or 499
        self.metrics.record(method, route, status, seconds, seen.bytes_in, seen.bytes_out)
        if status >= 400:
            self.metrics.errors.labels(seen.error_code(), str(status)).inc()
        self._record_layer(scope, route, status, seconds)
        if log.isEnabledFor(logging.INFO):
            log.info("request", extra={"fields": {
                "method": method, "path": scope["path"], "route": route, "status": status,
                "duration_ms": round(seconds * 1000, 3), "bytes_in": seen.bytes_in, "bytes_out": seen.bytes_out}})

    def _record_layer(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        params: dict[str, Any] = scope.get("path_params") or {}
        graph = graph_of_path(scope["path"])
        layer = params.get("layer") or params.get("model")
        if graph is None or not isinstance(layer, str):
            return
        if route.endswith(("/apply", "/infer")):
            self.metrics.count_inference(graph, layer, seconds, ok=status == 200)
        if status == 200 and route.endswith(("/apply", "/infer")):
            self.metrics.observe_apply(graph, layer, seconds)
        elif status == 204 and scope["method"] == "DELETE":
            self.metrics.forget_layer(graph, layer)


class BearerAuth:
    def __init__(self, app: ASGIApp, rules: list[TokenRule]) -> None:
        self.app, self.rules = app, rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.rules:
            await self.app(scope, receive, send)
            return
        verdict = authorize(self.rules, _header(scope, b"authorization"), scope["path"])
        if verdict == "unauthorized":
            await send_error(scope, send, Unauthorized("missing or wrong bearer token; send 'Authorization: Bearer <token>'"),
                             [(b"www-authenticate", b'Bearer realm="layerserve"')])
        elif verdict == "forbidden":
            await send_error(scope, send, Forbidden("this token is not allowed on this route or graph"))
        else:
            await self.app(scope, receive, send)


def _segment(raw: bytes) -> str:
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def _path_problem(raw_path: bytes) -> LayerServeError | None:
    """Graph and layer names in a ``/v1/graphs/...`` path, checked before routing, so that a
    name with ``/`` (sent as ``%2F``) is refused as a bad name rather than a missing route."""
    if not raw_path.startswith(b"/v1/graphs/"):
        return None
    parts = raw_path.split(b"/")
    if len(parts) < 4 or parts[1] != b"v1" or parts[2] != b"graphs" or not parts[3]:
        return None
    graph = _segment(parts[3])
    if not GRAPH_NAME.fullmatch(graph):
        return InvalidArgument(f"graph name must match {GRAPH_NAME.pattern}, got {graph[:80]!r}", code="invalid_name")
    if len(parts) > 5 and parts[4] == b"layers" and parts[5]:
        return layer_ref_problem(_segment(parts[5]))
    return None


class _BodyGuard:
    """Counts the body as it arrives; past the limit, the route's read fails with 413."""

    def __init__(self, receive: Receive, limit: int, declared: str | None, *, chunked: bool) -> None:
        self._receive, self.limit, self.size = receive, limit, 0
        self.complete = (declared or "0") == "0" and not chunked

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.size > self.limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {self.limit} bytes", limit=self.limit)
        else:
            self.complete = True
        return message


async def _within(awaitable: Awaitable[None], seconds: float) -> None:
    """``awaitable``, or ``asyncio.TimeoutError`` after ``seconds``: in this task where Python
    has ``asyncio.timeout`` (3.11), else through ``wait_for`` (a task of its own)."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:
        await asyncio.wait_for(awaitable, seconds)
        return
    async with timeout(seconds):
        await awaitable


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    def _precheck(self, scope: Scope, declared: str | None) -> LayerServeError | None:
        limit = self.settings.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes", limit=limit)
        problem = _path_problem(scope.get("raw_path") or scope["path"].encode())
        if problem is not None:
            return problem
        state = scope["app"].state if "app" in scope else None
        if scope["path"].startswith(_NEEDS_STATE) and getattr(state, "plane", None) is None:
            return ServiceUnavailable("the server is starting: the state store is not loaded yet; see /readyz")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        problem = self._precheck(scope, declared)
        if problem is not None:
            await send_error(scope, send, problem)
            return
        chunked = _header(scope, b"transfer-encoding") is not None
        body = _BodyGuard(receive, self.settings.max_body_bytes, declared, chunked=chunked)
        started = False

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await _within(self.app(scope, body.receive, send_watched), self.settings.request_timeout_s)
        except TimeoutError:
            if started:
                return  # the answer is partly sent: the connection closes without the rest
            timeout = self.settings.request_timeout_s
            if not body.complete:
                await send_error(scope, send, RequestTimeout(f"the request body did not arrive within {timeout} s"))
            else:
                await send_error(scope, send, ProcessingTimeout(f"the request took longer than {timeout} s; "
                                                         "it may still complete"))
