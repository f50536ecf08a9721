"""The hot routes, served ahead of FastAPI's router: ``POST /v1/graphs/{graph}/layers/{layer}/apply``,
``POST /v1/graphs/{graph}/programs/{program}:run`` and ``POST /v2/models/{model}[/versions/{version}]/infer``.

They sit inside the middleware (request id, metrics, access log, auth, limits and timeout all
apply as to any route) and do exactly what their FastAPI routes do (``native.apply_reply``,
``oip.infer_reply``), minus the framework's per-request work: no scan of every route, no
``Request`` object, no dependency solving, no exception-middleware round trip. The scope
gets the route's template and path parameters as the router would set them, so metrics
label these requests alike. Any other request, and these paths under a ``root_path``, go
on to FastAPI unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from layerserve.server.api.native import APPLY_PATH, apply_reply
from layerserve.server.api.oip import HEADER_LENGTH, INFER_PATHS, infer_reply
from layerserve.server.api.programs import RUN_PATH, programs_for, run_reply
from layerserve.server.api.wire import Reply, receive_body
from layerserve.server.errors import LayerServeError

__all__ = ["HotRoutes"]

_HEADER_LENGTH = HEADER_LENGTH.lower().encode()


class _Route(NamedTuple):
    """What the middleware reads of ``scope["route"]``: the template that labels the metrics."""

    path: str
    methods: frozenset[str] = frozenset({"POST"})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name; the first of repeated ones, as Starlette's."""
    return dict(reversed(scope["headers"]))


async def send_reply(send: Send, reply: Reply) -> None:
    """The reply as one ``http.response.start`` and one ``http.response.body``."""
    headers = [(b"content-length", str(len(reply.body)).encode()), (b"content-type", reply.content_type.encode())]
    if reply.headers:
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._apply = _Route(APPLY_PATH)
        self._infer = [_Route(path) for path in INFER_PATHS]
        self._run = _Route(RUN_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            parts = scope["path"].split("/")
            if len(parts) == 7 and parts[6] == "apply" and parts[1] == "v1" and parts[2] == "graphs" \
                    and parts[4] == "layers" and parts[3] and parts[5]:
                await self._serve_apply(scope, receive, send, parts[3], parts[5])
                return
            if len(parts) == 6 and parts[4] == "programs" and parts[5].endswith(":run") and parts[1] == "v1" \
                    and parts[2] == "graphs" and parts[3] and len(parts[5]) > 4:
                await self._serve_run(scope, receive, send, parts[3], parts[5][:-4])
                return
            if len(parts) in (5, 7) and parts[1] == "v2" and parts[2] == "models" and parts[3] \
                    and parts[-1] == "infer" and (len(parts) == 5 or (parts[4] == "versions" and parts[5])):
                await self._serve_infer(scope, receive, send, parts)
                return
        await self.app(scope, receive, send)

    async def _serve_apply(self, scope: Scope, receive: Receive, send: Send, graph: str, layer: str) -> None:
        scope["route"], scope["path_params"] = self._apply, {"graph": graph, "layer": layer}
        state = scope["app"].state
        headers = _headers(scope)
        try:
            raw = await receive_body(receive, state.settings.max_body_bytes)
            content_type = headers.get(b"content-type")
            reply = await apply_reply(state.plane, state.settings, graph, layer, raw,
                                      None if content_type is None else content_type.decode("latin-1"),
                                      headers.get(b"accept", b"").decode("latin-1"))
        except LayerServeError as exc:  # as the app's exception handler answers it
            body: Any = orjson.dumps(exc.body(), option=orjson.OPT_SERIALIZE_NUMPY)
            reply = Reply(exc.status, body, "application/json", getattr(exc, "headers", None))
        await send_reply(send, reply)

    async def _serve_run(self, scope: Scope, receive: Receive, send: Send, graph: str, program: str) -> None:
        scope["route"], scope["path_params"] = self._run, {"graph": graph, "program": program}
        state = scope["app"].state
        headers = _headers(scope)
        try:
            raw = await receive_body(receive, state.settings.max_body_bytes)
            content_type = headers.get(b"content-type")
            reply = await run_reply(programs_for(state), state.settings, graph, program, raw,
                                    None if content_type is None else content_type.decode("latin-1"),
                                    headers.get(b"accept", b"").decode("latin-1"))
        except LayerServeError as exc:  # as the app's exception handler answers it
            body: Any = orjson.dumps(exc.body(), option=orjson.OPT_SERIALIZE_NUMPY)
            reply = Reply(exc.status, body, "application/json", getattr(exc, "headers", None))
        await send_reply(send, reply)

    async def _serve_infer(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        model = parts[3]
        if len(parts) == 5:
            scope["route"], scope["path_params"] = self._infer[0], {"model": model}
        else:
            scope["route"], scope["path_params"] = self._infer[1], {"model": model, "version": parts[5]}
        state = scope["app"].state
        length = _headers(scope).get(_HEADER_LENGTH)
        reply = await infer_reply(state.plane, state.settings, model,
                                  lambda: receive_body(receive, state.settings.max_body_bytes),
                                  None if length is None else length.decode("latin-1"),
                                  parts[5] if len(parts) == 7 else None)
        await send_reply(send, reply)
