"""The outermost middleware: the request's route (matched once, see ``routes.py``), its id
(``X-Request-ID``, echoed or made), metrics, one JSON access log line per request, and the
error body for anything unhandled.

Pure ASGI, not ``BaseHTTPMiddleware``: bodies stream through untouched. Every request pays for
this code, so it reads the raw header list once, keeps its metric children
(``ServiceMetrics.record``) and builds the access log line only when it is written.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layerserve.server.api.errors import send_error
from layerserve.server.api.routes import RouteTable, match_of, match_request, request_header, split_model
from layerserve.server.api.wire import LAYER_ID_KEY
from layerserve.server.errors import LayerServeError
from layerserve.server.logs import request_id
from layerserve.server.metrics import ServiceMetrics

__all__ = ["EXCHANGE_KEY", "Exchange", "RequestContext", "exchange_of"]

log = logging.getLogger("layerserve.http")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ERROR_SNIFF_BYTES = 65536
EXCHANGE_KEY = "layerserve.exchange"  # the scope key holding the request's Exchange


def exchange_of(scope: Scope, send: Send) -> tuple[Exchange, Send]:
    """The request's ``Exchange`` and the ``send`` to use: ``RequestContext``'s, or else a new
    one noting what ``send`` sends."""
    seen = scope.get(EXCHANGE_KEY)
    if isinstance(seen, Exchange):
        return seen, send
    seen = Exchange()
    return seen, seen.noting(send)


def _incoming_id(scope: Scope) -> str:
    given = request_header(scope, _REQUEST_ID)
    return given if given is not None and _VALID_ID.fullmatch(given) else uuid.uuid4().hex


class Exchange:
    """What one request did, as seen at the transport. The middleware inside ``RequestContext``
    reads its status from here (``exchange_of``) rather than wrapping ``send`` once more each."""

    __slots__ = ("bytes_in", "bytes_out", "error_body", "started", "status")

    def __init__(self) -> None:
        self.status, self.started, self.bytes_in, self.bytes_out = 0, False, 0, 0
        self.error_body = b""

    def noting(self, send: Send) -> Send:
        """``send`` that notes the status here: for a middleware used without ``RequestContext``."""
        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status, self.started = message["status"], True
            await send(message)

        return noted

    def error_code(self) -> str:
        """The error body's code; bodies without one (the v2 protocol's) by their status."""
        try:
            return str(orjson.loads(self.error_body)["error"]["code"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return f"http_{self.status}"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, table: RouteTable) -> None:
        self.app, self.metrics, self.table = app, metrics, table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        match = match_request(self.table, scope)
        if match is not None:  # as the router would set them: every later step reads these
            scope["route"], scope["path_params"] = match, match.params
        rid = _incoming_id(scope)
        context = request_id.set(rid)
        seen = scope[EXCHANGE_KEY] = Exchange()

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

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, seen: Exchange) -> None:
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

    def _record(self, scope: Scope, seen: Exchange, seconds: float) -> None:
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
        """Apply latency by layer id, whatever the path called the layer (name, id, graph.name),
        so that the one series of a deleted layer goes with it."""
        match, layer = match_of(scope), scope.get(LAYER_ID_KEY)
        graph = match.graph if match is not None else None
        if graph is None or match is None:
            return
        if route.endswith(("/apply", "/infer")):  # the protocol's statistics: by id once resolved
            named = match.params.get("layer") or split_model(match.params.get("model", ""))[1]
            self.metrics.count_inference(graph, layer if isinstance(layer, str) else named, seconds, ok=status == 200)
        if not isinstance(layer, str):
            return
        if status == 200 and route.endswith(("/apply", "/infer")):
            self.metrics.observe_apply(graph, layer, seconds)
        elif status == 204 and scope["method"] == "DELETE":
            self.metrics.forget_layer(graph, layer)
