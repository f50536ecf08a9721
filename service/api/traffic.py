"""Feeds ``LayerTraffic`` (the dashboard's live figures) with every apply and infer request.

Pure ASGI, like the other middleware: requests that are not an apply or an infer pass
straight through after one ``endswith``; the others are timed, and their status is read from
the request's ``Exchange`` (``context.py``) once they are done.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from layerserve.server.api.context import exchange_of
from layerserve.server.traffic import LayerTraffic

__all__ = ["TrafficRecorder", "layer_of_path"]


def layer_of_path(path: str) -> tuple[str, str] | None:
    """(graph, layer reference) of ``/v1/graphs/{g}/layers/{layer}/apply`` and
    ``/v2/models/{model}[/versions/{v}]/infer`` (``g.layer``, or a layer of ``default``)."""
    parts = path.split("/")
    if len(parts) == 7 and parts[1:3] == ["v1", "graphs"] and parts[4] == "layers" and parts[6] == "apply":
        return (parts[3], parts[5]) if parts[3] and parts[5] else None
    if len(parts) in (5, 7) and parts[1:3] == ["v2", "models"] and parts[-1] == "infer" and parts[3]:
        if len(parts) == 7 and parts[4] != "versions":
            return None
        graph, _, layer = parts[3].partition(".") if "." in parts[3] else ("default", "", parts[3])
        return (graph, layer) if graph and layer else None
    return None


class TrafficRecorder:
    def __init__(self, app: ASGIApp, traffic: LayerTraffic) -> None:
        self.app, self.traffic = app, traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(("/apply", "/infer")):
            await self.app(scope, receive, send)
            return
        target = layer_of_path(scope["path"])
        if target is None:
            await self.app(scope, receive, send)
            return
        seen, send = exchange_of(scope, send)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            # No response at all: an unhandled error (answered 500 further out) or a client gone.
            self.traffic.record_request(target[0], target[1], seen.status or 500, time.perf_counter() - started)
