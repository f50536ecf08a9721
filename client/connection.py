"""Connections to a layerserve server: ``Connection`` (sync) and ``AsyncConnection``.

Both send the calls ``layerserve._core`` prepares. Idempotent calls (GET, PUT, DELETE) are
retried a few times, with jittered backoff or the server's ``Retry-After``, when the transport
fails or the server answers 503; others are not, since the server may already have acted on them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from layerserve._checkpoints import AsyncCheckpointCalls, CheckpointCalls
from layerserve._core import Call, Result, parse_response, prepare, retry_delay, transport_error
from layerserve._transport import LeanHTTP, usable_for
from layerserve.exceptions import LayerServeError, UnavailableError

if TYPE_CHECKING:
    from layerserve.layers.base import Layer

__all__ = ["AsyncConnection", "Connection", "connect", "get_default_connection"]

DEFAULT_URL = "http://127.0.0.1:8000"
_default: Connection | None = None


def _headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


class _Base:
    def __init__(self, url: str | None, graph: str, token: str | None, binary: bool, timeout: float) -> None:
        self.url = (url or os.environ.get("LAYERSERVE_URL") or DEFAULT_URL).rstrip("/")
        self.graph = graph
        self.token = token
        self.binary = binary
        self.timeout = timeout

    def _prepare(self, method: str, path: str, body: dict[str, Any] | None = None,
                 tensors: list[np.ndarray] | None = None, **kw: Any) -> Call:
        return prepare(method, path, body, tensors, binary=self.binary, **kw)


class Connection(_Base, CheckpointCalls):
    """A sync connection (one pooled HTTP/1.1 client). ``conn.layers.Dense(...)`` uses it."""

    def __init__(self, url: str | None = None, graph: str = "default", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0) -> None:
        super().__init__(url, graph, token, binary, timeout)
        self._http = httpx.Client(base_url=self.url, headers=_headers(token), timeout=timeout)
        # Plain http without a proxy: the lean client (one write per call, a fraction of the overhead).
        self._lean = LeanHTTP(self.url, _headers(token), timeout) if usable_for(self.url) else None
        from layerserve.layers import BoundLayers

        self.layers = BoundLayers(self)

    def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        for attempt in itertools.count():
            try:
                return parse_response(*self._exchange(call), tensor_key)
            except httpx.TransportError as exc:
                error: LayerServeError = transport_error(call, self.url, exc)
            except UnavailableError as exc:
                error = exc
            delay = retry_delay(call, error, attempt)
            if delay is None:
                raise error
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _exchange(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        if self._lean is not None:
            return self._lean.request(call.method, call.path, call.headers, call.content, call.params)
        response = self._http.request(call.method, call.path, content=call.content, headers=call.headers,
                                      params=call.params or None)
        return response.status_code, dict(response.headers), response.content

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             tensors: list[np.ndarray] | None = None, tensor_key: str = "outputs", **kw: Any) -> Result:
        return self.send(self._prepare(method, path, body, tensors, **kw), tensor_key)

    # ---- graph-wide operations ------------------------------------------------------
    def list_layers(self) -> list[Layer]:
        from layerserve.layers.base import Layer

        body = self.call("GET", f"/v1/graphs/{self.graph}/layers").body
        return [Layer._from_description(self, d) for d in body["layers"]]

    def global_variables(self) -> list[Any]:
        from layerserve.layers.base import RemoteVariable

        body = self.call("GET", f"/v1/graphs/{self.graph}/variables").body
        return [RemoteVariable._from_json(self, None, v) for v in body["variables"]]

    def run_updates(self) -> list[str]:
        """Run every pending update of every layer of the graph (TF1's UPDATE_OPS)."""
        body = self.call("POST", f"/v1/graphs/{self.graph}/updates:run", {"inputs": None}).body
        return list(body["updated_variables"])

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        self._http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConnection(_Base, AsyncCheckpointCalls):
    """An asyncio connection: ``await conn.send(call)``; layers use it through ``apply_async``."""

    def __init__(self, url: str | None = None, graph: str = "default", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0) -> None:
        super().__init__(url, graph, token, binary, timeout)
        self._http = httpx.AsyncClient(base_url=self.url, headers=_headers(token), timeout=timeout)

    async def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        for attempt in itertools.count():
            try:
                response = await self._http.request(call.method, call.path, content=call.content,
                                                    headers=call.headers, params=call.params or None)
                return parse_response(response.status_code, dict(response.headers), response.content, tensor_key)
            except httpx.TransportError as exc:
                error: LayerServeError = transport_error(call, self.url, exc)
            except UnavailableError as exc:
                error = exc
            delay = retry_delay(call, error, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   tensors: list[np.ndarray] | None = None, tensor_key: str = "outputs", **kw: Any) -> Result:
        return await self.send(self._prepare(method, path, body, tensors, **kw), tensor_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def connect(url: str | None = None, graph: str = "default", token: str | None = None,
            binary: bool = True) -> Connection:
    """Open a connection and make it the default for ``layerserve.layers``."""
    global _default
    _default = Connection(url, graph=graph, token=token, binary=binary)
    return _default


def get_default_connection() -> Connection:
    global _default
    if _default is None:
        _default = Connection()
    return _default
