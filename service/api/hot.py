"""The hot routes, served ahead of FastAPI's router: ``POST /v1/graphs/{graph}/layers/{layer}/apply``,
``POST /v1/graphs/{graph}/programs/{program}:run`` and ``POST /v2/models/{model}[/versions/{version}]/infer``.

They sit inside the middleware (request id, metrics, access log, auth, limits and timeout all
apply as to any route), dispatch on the template the route table matched once (``routes.py``),
and call the same endpoint functions as their FastAPI routes (``native.apply_reply``,
``oip.infer_reply``), minus the framework's per-request work: no second routing, no
``Request`` object, no dependency solving, no exception-middleware round trip. Errors go
through the one renderer (``errors.error_reply``). Any other request, and these paths under a
``root_path``, go on to FastAPI unchanged. A route joins ``FAST`` by mapping its template to
a handler in ``HotRoutes.__init__``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from layerserve.server.api.errors import error_reply, send_reply
from layerserve.server.api.native import APPLY_PATH, apply_reply
from layerserve.server.api.oip import HEADER_LENGTH, INFER_PATHS, infer_reply
from layerserve.server.api.programs import RUN_PATH, programs_for, run_reply
from layerserve.server.api.routes import match_of
from layerserve.server.api.wire import LAYER_ID_KEY, Reply, receive_body
from layerserve.server.errors import LayerServeError

__all__ = ["HotRoutes"]

_HEADER_LENGTH = HEADER_LENGTH.lower().encode()


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name; the first of repeated ones, as Starlette's."""
    return dict(reversed(scope["headers"]))


class HotRoutes:
    """Serves the routes in ``FAST`` (by the template the route table matched), else passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._fast = {APPLY_PATH: self._serve_apply, RUN_PATH: self._serve_run,
                      **{path: self._serve_infer for path in INFER_PATHS}}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = match_of(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        serve = self._fast.get(match.path) if match is not None else None
        if serve is None:
            await self.app(scope, receive, send)
            return
        assert match is not None
        reply = await serve(scope, receive, match.params)
        scope[LAYER_ID_KEY] = reply.layer_id
        await send_reply(send, reply)

    @staticmethod
    async def _serve_apply(scope: Scope, receive: Receive, params: dict[str, str]) -> Reply:
        state = scope["app"].state
        headers = _headers(scope)
        try:
            raw = await receive_body(receive)
            content_type = headers.get(b"content-type")
            return await apply_reply(state.plane, state.settings, params["graph"], params["layer"], raw,
                                     None if content_type is None else content_type.decode("latin-1"),
                                     headers.get(b"accept", b"").decode("latin-1"))
        except LayerServeError as exc:  # as the app's exception handler answers it
            return error_reply(exc, scope["path"])

    @staticmethod
    async def _serve_run(scope: Scope, receive: Receive, params: dict[str, str]) -> Reply:
        state = scope["app"].state
        headers = _headers(scope)
        try:
            raw = await receive_body(receive)
            content_type = headers.get(b"content-type")
            return await run_reply(programs_for(state), state.settings, params["graph"], params["program"], raw,
                                   None if content_type is None else content_type.decode("latin-1"),
                                   headers.get(b"accept", b"").decode("latin-1"))
        except LayerServeError as exc:  # as the app's exception handler answers it
            return error_reply(exc, scope["path"])

    @staticmethod
    async def _serve_infer(scope: Scope, receive: Receive, params: dict[str, str]) -> Reply:
        state = scope["app"].state
        length = _headers(scope).get(_HEADER_LENGTH)
        return await infer_reply(state.plane, state.settings, params["model"], lambda: receive_body(receive),
                                 None if length is None else length.decode("latin-1"), params.get("version"))
