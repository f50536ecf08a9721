"""Assembles the service: store, runtime and data plane behind the FastAPI app."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from layerserve.server.api.auth import parse_tokens
from layerserve.server.api.authn import BearerAuth
from layerserve.server.api.checkpoints import checkpoint_router
from layerserve.server.api.context import RequestContext
from layerserve.server.api.errors import install_error_handlers
from layerserve.server.api.hot import HotRoutes
from layerserve.server.api.limits import RequestLimits
from layerserve.server.api.native import graph_router, native_router
from layerserve.server.api.oip import oip_router
from layerserve.server.api.openapi import install_openapi
from layerserve.server.api.ops import ops_router
from layerserve.server.api.programs import programs_router
from layerserve.server.api.routes import RouteTable
from layerserve.server.api.traffic import TrafficRecorder
from layerserve.server.api.ui import ui_router
from layerserve.server.api.wire import set_decode_threads
from layerserve.server.config import Settings
from layerserve.server.layers.custom import CustomLayer
from layerserve.server.metrics import ServiceMetrics
from layerserve.server.plane import DataPlane
from layerserve.server.plane.checkpoints import Checkpoints
from layerserve.server.runtime.batching import Batcher, BatchPolicy, BatchStats
from layerserve.server.runtime.binding import binding_enabled
from layerserve.server.runtime.cancel import terminate_all
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import SessionCache
from layerserve.server.runtime.vetting import ModelVetting
from layerserve.server.startup import Startup
from layerserve.server.store.base import StateStore
from layerserve.server.store.filesystem import FilesystemStore
from layerserve.server.traffic import LayerTraffic
from layerserve.server.version import installed_version

__all__ = ["create_app", "open_store"]


def open_store(settings: Settings) -> StateStore:
    if not settings.store:
        return FilesystemStore(settings.state_dir, fsync=settings.fsync, write_behind_s=settings.write_behind_s)
    if settings.store.split("://", 1)[0] in ("redis", "rediss", "unix"):
        from layerserve.server.store.redis import RedisStore

        return RedisStore(settings.store, keep_versions=settings.keep_versions)
    raise ValueError(f"unsupported store {settings.store!r}: use redis://host:port/db, or --state-dir for the "
                     "embedded store")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    providers = select_providers(settings.providers, settings.provider_options, require=settings.require_providers)
    CustomLayer.max_model_bytes = settings.max_model_bytes
    CustomLayer.max_model_nodes, CustomLayer.max_model_depth = settings.max_model_nodes, settings.max_model_depth
    CustomLayer.max_model_edges = settings.max_model_edges
    CustomLayer.max_tensor_elements = settings.max_tensor_elements
    CustomLayer.max_model_inference_s = settings.max_model_inference_s
    io_binding = binding_enabled(settings.io_binding, providers)

    def build_plane(store: StateStore) -> DataPlane:
        sessions = SessionCache(providers, settings.max_sessions, settings.intra_op_threads,
                                settings.max_session_bytes, cpu_arena=settings.cpu_arena)
        vetting = ModelVetting(sessions, settings.model_validation_timeout_s)
        # The fork server validations start from, loaded beside the state (readiness does not wait).
        threading.Thread(target=vetting.warm, name="layerserve-validation-warm", daemon=True).start()
        executor = Executor(sessions, BatchPolicy.from_settings(settings), Batcher(app.state.batch_stats),
                            io_binding=io_binding, vetting=vetting)
        plane = DataPlane(settings, store, executor)  # loads the whole state
        app.state.checkpoints = Checkpoints.attach(plane)
        # A deleted layer's live figures go with it: a new layer under its name starts at zero.
        plane.delete_listeners.append(lambda graph, layer: app.state.traffic.forget(graph, {layer.id, layer.name}, layer.key))
        return plane

    def on_ready(plane: DataPlane) -> None:
        app.state.plane = plane
        app.state.ready = True

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        startup = Startup(providers, lambda: open_store(settings), build_plane, on_ready)
        app.state.startup = startup
        startup.start()  # loads in the background: /healthz answers meanwhile, /readyz says 503
        try:
            yield
        finally:
            app.state.ready = False
            terminate_all()  # runs nobody waits for any more must not hold the exit
            await startup.close()

    # /docs loads its assets from a CDN: off unless asked for (--docs); /openapi.json is always served.
    app = FastAPI(title="layerserve", version=installed_version(), lifespan=lifespan,
                  description="TensorFlow's tf.compat.v1.layers, hosted and executed with ONNX Runtime.",
                  docs_url="/docs" if settings.docs else None, redoc_url=None)
    app.state.settings = settings
    app.state.providers = providers
    app.state.io_binding = io_binding
    app.state.store_kind = "redis" if settings.store else "filesystem"
    app.state.ready = False
    app.state.batch_stats = BatchStats()  # read by /metrics
    app.state.plane = None
    app.state.metrics = metrics = ServiceMetrics()
    metrics.install(lambda: app.state.plane, app.state.batch_stats, ready=lambda: float(app.state.ready))
    app.state.traffic = traffic = LayerTraffic()  # the dashboard's live figures
    app.state.batch_stats.listeners.append(traffic.record_run)
    set_decode_threads(settings.json_decode_threads)
    install_error_handlers(app)
    install_openapi(app)
    routers = (native_router, oip_router, ops_router, programs_router, graph_router, checkpoint_router, ui_router)
    for router in routers:
        app.include_router(router)
    # Added last = outermost: request context, then auth, then the dashboard's traffic figures,
    # then limits, then the hot routes (apply, infer: served without FastAPI's routing), then
    # FastAPI's routes.
    app.add_middleware(HotRoutes)
    app.add_middleware(RequestLimits, settings=settings)
    app.add_middleware(TrafficRecorder, traffic=traffic)
    app.add_middleware(BearerAuth, rules=parse_tokens(settings.token))
    # The route table is compiled once, from the app's routes and every router included above: a
    # new route is in it by being declared on one of those routers (or a router added to them).
    table = RouteTable.from_routes([*app.routes, *(route for router in routers for route in router.routes)])
    app.add_middleware(RequestContext, metrics=metrics, table=table)
    return app

