"""Bringing a server up in the background: lock and load the state store, warm ONNX Runtime.

The HTTP server listens at once, so ``/healthz`` answers while a large state directory loads
or while a previous owner of the directory is still exiting; ``/readyz`` and the data routes
answer 503 until both the store and the runtime are ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from layerserve.server.plane import DataPlane
from layerserve.server.runtime.providers import ProviderSelection
from layerserve.server.runtime.warmup import warm_up_runtime
from layerserve.server.store.base import StateStore

__all__ = ["Startup"]

log = logging.getLogger("layerserve.startup")


class Startup:
    """Runs the start-up on a daemon thread (it may wait on the state directory's lock). A
    failure (a store that does not answer yet, a state it cannot read) is logged, reported by
    ``/readyz`` as ``startup_error``, and retried with backoff until it succeeds."""

    def __init__(self, providers: ProviderSelection, open_store: Callable[[], StateStore],
                 build_plane: Callable[[StateStore], DataPlane], on_ready: Callable[[DataPlane], None],
                 max_backoff_s: float = 10.0) -> None:
        self.providers, self.max_backoff_s = providers, max_backoff_s
        self._open_store, self._build_plane, self._on_ready = open_store, build_plane, on_ready
        self.store: StateStore | None = None
        self.error: str | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="layerserve-startup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        delay = 0.25
        while not self._stopped.is_set():
            try:
                plane = self._attempt()
            except Exception as exc:
                log.exception("start-up failed; retrying in %.2f s", delay)
                self.error = f"{type(exc).__name__}: {exc}"
                self._stopped.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.error = None
            log.info("ready", extra={"fields": {"graphs": len(plane.graphs), "providers": list(self.providers.active)}})
            self._on_ready(plane)
            return

    def _attempt(self) -> DataPlane:
        warm_up_runtime(self.providers)
        store = self._open_store()
        try:
            plane = self._build_plane(store)  # waits for the state directory's lock, then loads
        except BaseException:
            store.close()
            raise
        self.store = store
        return plane

    async def close(self) -> None:
        self._stopped.set()
        if self.store is not None:
            await self.store.aclose()
            self.store.close()
