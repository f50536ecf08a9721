"""The limits middleware, each check once per request: readiness (503 until the store is
loaded), the graph and layer names of the route (422), the body size (413 from
``Content-Length`` before any byte is read, and while streaming; JSON bodies by
``--max-json-bytes``, binary ones by ``--max-body-bytes``), and the request timeout (408 while
the body is still arriving, else 503; ``asyncio.timeout``, no task of its own per request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layerserve.protocol import FRAME_CONTENT_TYPE
from layerserve.server.api.context import exchange_of
from layerserve.server.api.errors import send_error
from layerserve.server.api.routes import RouteMatch, match_of, request_header, split_model
from layerserve.server.api.wire import declared_too_large
from layerserve.server.config import Settings
from layerserve.server.core.naming import GRAPH_NAME, layer_ref_problem
from layerserve.server.errors import (
    InvalidArgument,
    LayerServeError,
    PayloadTooLarge,
    ProcessingTimeout,
    RequestTimeout,
    ServiceUnavailable,
)

__all__ = ["RequestLimits"]

_NEEDS_STATE = ("/v1/graphs", "/v2/models")
_OIP_HEADER_LENGTH = b"inference-header-content-length"
_JSON_TYPES = ("application/json", "")


def _name_problem(match: RouteMatch | None) -> LayerServeError | None:
    """The route's graph and layer names (an OIP model names both): a name with ``/`` (sent as
    ``%2F``) is one bad name."""
    if match is None:
        return None
    layer: str | None
    if "model" in match.params:
        graph, layer = split_model(match.params["model"])
    elif match.path.startswith("/v1/graphs/{graph}"):
        graph, layer = match.params.get("graph", ""), match.params.get("layer")
    else:
        return None
    if not GRAPH_NAME.fullmatch(graph):
        return InvalidArgument(f"graph name must match {GRAPH_NAME.pattern}, got {graph[:80]!r}", code="invalid_name")
    return None if layer is None else layer_ref_problem(layer)


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

    def _body_limit(self, scope: Scope) -> int:
        """JSON bodies (``application/json``, or no content type: read as JSON), parsed into
        Python objects, up to ``--max-json-bytes``; binary ones (frames, OIP binary data,
        checkpoint uploads) up to ``--max-body-bytes``."""
        content_type = (request_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type not in _JSON_TYPES or request_header(scope, _OIP_HEADER_LENGTH) is not None:
            return self.settings.max_body_bytes
        return min(self.settings.max_json_bytes, self.settings.max_body_bytes)

    def _hint(self, limit: int) -> str:
        if limit == self.settings.max_body_bytes:
            return ""
        return f" for JSON; send large tensors as a binary frame ({FRAME_CONTENT_TYPE})"

    def _precheck(self, scope: Scope, declared: str | None, limit: int) -> LayerServeError | None:
        if declared_too_large(declared, limit):
            shown = (declared or "")[:40]
            return PayloadTooLarge(f"request body of {shown} bytes exceeds the limit of {limit} bytes{self._hint(limit)}",
                                   limit=limit)
        problem = _name_problem(match_of(scope))
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
        declared = request_header(scope, b"content-length")
        limit = self._body_limit(scope)
        problem = self._precheck(scope, declared, limit)
        if problem is not None:
            await send_error(scope, send, problem)
            return
        chunked = request_header(scope, b"transfer-encoding") is not None
        body = _BodyGuard(receive, limit, declared, chunked=chunked)
        seen, watched = exchange_of(scope, send)
        try:
            await _within(self.app(scope, body.receive, watched), self.settings.request_timeout_s)
        except TimeoutError:
            if seen.started:
                return  # the answer is partly sent: the connection closes without the rest
            timeout = self.settings.request_timeout_s
            if not body.complete:
                await send_error(scope, send, RequestTimeout(f"the request body did not arrive within {timeout} s"))
            else:
                await send_error(scope, send, ProcessingTimeout(f"the request took longer than {timeout} s; "
                                                         "it may still complete"))
