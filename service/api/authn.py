"""Bearer-token middleware: ``Authorization: Bearer`` on every route but health (401, or 403
for a token limited to other graphs). The graph is the route match's (``routes.py``)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from layerserve.server.api.auth import TokenRule, authorize
from layerserve.server.api.errors import send_error
from layerserve.server.api.routes import match_of, request_header
from layerserve.server.errors import Forbidden, Unauthorized

__all__ = ["BearerAuth"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="layerserve"'}


class BearerAuth:
    def __init__(self, app: ASGIApp, rules: list[TokenRule]) -> None:
        self.app, self.rules = app, rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.rules:
            await self.app(scope, receive, send)
            return
        match = match_of(scope)
        verdict = authorize(self.rules, request_header(scope, b"authorization"), scope["path"],
                            graph=match.graph if match is not None else None, matched=match is not None)
        if verdict == "unauthorized":
            await send_error(scope, send, Unauthorized("missing or wrong bearer token; send "
                                                       "'Authorization: Bearer <token>'"), _CHALLENGE)
        elif verdict == "forbidden":
            await send_error(scope, send, Forbidden("this token is not allowed on this route or graph"))
        else:
            await self.app(scope, receive, send)
