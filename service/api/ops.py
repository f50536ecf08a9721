"""Operational endpoints: liveness, readiness and the effective configuration."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from layerserve.server.api.wire import json_response
from layerserve.server.metrics import CONTENT_TYPE
from layerserve.server.runtime.warmup import runtime_version

__all__ = ["ops_router"]

ops_router = APIRouter(tags=["operations"])


@ops_router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@ops_router.get("/readyz")
async def readyz(request: Request) -> Response:
    state = request.app.state
    ready = getattr(state, "ready", False)
    if ready:
        ready = await run_in_threadpool(state.plane.store.healthy)
    providers = state.providers
    startup = getattr(state, "startup", None)
    body = {"ready": ready, "providers": list(providers.active), "missing_providers": list(providers.missing),
            "device": providers.device, "io_binding": getattr(state, "io_binding", False),
            "onnxruntime": runtime_version(), "store": state.store_kind,
            "startup_error": getattr(startup, "error", None),
            "damaged_graphs": dict(state.plane.store.damaged) if state.plane is not None else {}}
    return json_response(body, 200 if ready else 503)


@ops_router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@ops_router.get("/v1/config")
async def config(request: Request) -> Response:
    return json_response(request.app.state.settings.public())
