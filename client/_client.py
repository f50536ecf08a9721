"""The thin shells that send: ``Client`` (sync) and ``AsyncConnection``, and the default client.

Both send what ``layerserve._routes`` builds (through ``layerserve._core``) over a transport
(``layerserve._transport``). Idempotent calls (GET, PUT, DELETE) are retried a few times, with
jittered backoff or the server's ``Retry-After``, when the transport fails or the server answers
503 (``layerserve._core.retry_delay``); others are not, since the server may already have acted on them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
import numpy as np

from layerserve._core import (
    Call,
    Request,
    Result,
    parse_response,
    prepare,
    prepare_request,
    retry_delay,
    transport_error,
)
from layerserve._transport import AsyncHttpxTransport, AsyncTransport, Reply, Transport, sync_transport
from layerserve.exceptions import LayerServeError, UnavailableError

__all__ = ["AsyncClient", "Client", "default_client", "set_default_client"]

DEFAULT_URL = "http://127.0.0.1:8000"


def auth_headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


class _Base:
    def __init__(self, url: str | None, graph: str, token: str | None, *, binary: bool, timeout: float) -> None:
        self.url = (url or os.environ.get("LAYERSERVE_URL") or DEFAULT_URL).rstrip("/")
        self.graph = graph
        self.token = token
        self.binary = binary
        self.timeout = timeout

    def _prepare(self, method: str, path: str, body: dict[str, Any] | None = None,
                 tensors: list[np.ndarray] | None = None, **kw: Any) -> Call:
        return prepare(method, path, body, tensors, binary=self.binary, **kw)


class Client(_Base):
    """A sync client of one server and graph: ``send`` a route's request, get its result."""

    def __init__(self, url: str | None = None, graph: str = "default", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0,  # noqa: FBT001, FBT002 - a public, positional signature
                 transport: Transport | None = None) -> None:
        super().__init__(url, graph, token, binary=binary, timeout=timeout)
        self.transport = transport or sync_transport(self.url, auth_headers(token), timeout)

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

    def _exchange(self, call: Call) -> Reply:
        """One call, no retry, the answer as it came (status, headers, body)."""
        return self.transport.request(call.method, call.path, call.headers, call.content, call.params)

    def request(self, request: Request) -> Result:
        """Send one route's request (``layerserve._routes``)."""
        return self.send(prepare_request(request, binary=self.binary), request.tensor_key)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             tensors: list[np.ndarray] | None = None, tensor_key: str = "outputs", **kw: Any) -> Result:
        return self.send(self._prepare(method, path, body, tensors, **kw), tensor_key)

    def close(self) -> None:
        self.transport.close()


class AsyncClient(_Base):
    """An asyncio client: ``await client.send(call)``; layers use it through ``apply_async``."""

    def __init__(self, url: str | None = None, graph: str = "default", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0,  # noqa: FBT001, FBT002 - a public, positional signature
                 transport: AsyncTransport | None = None) -> None:
        super().__init__(url, graph, token, binary=binary, timeout=timeout)
        self.transport = transport or AsyncHttpxTransport(self.url, auth_headers(token), timeout)

    async def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        for attempt in itertools.count():
            try:
                reply = await self.transport.request(call.method, call.path, call.headers, call.content, call.params)
                return parse_response(*reply, tensor_key)
            except httpx.TransportError as exc:
                error: LayerServeError = transport_error(call, self.url, exc)
            except UnavailableError as exc:
                error = exc
            delay = retry_delay(call, error, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def request(self, request: Request) -> Result:
        return await self.send(prepare_request(request, binary=self.binary), request.tensor_key)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   tensors: list[np.ndarray] | None = None, tensor_key: str = "outputs", **kw: Any) -> Result:
        return await self.send(self._prepare(method, path, body, tensors, **kw), tensor_key)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_default: Client | None = None
_make_default: Callable[[], Client] = Client


def default_client() -> Client:
    """The client layers use when none is given (``layerserve.connect`` sets it)."""
    global _default
    if _default is None:
        _default = _make_default()
    return _default


def set_default_client(client: Client | None = None, *, factory: Callable[[], Client] | None = None) -> None:
    """Make ``client`` the default; ``factory`` makes one when none was set."""
    global _default, _make_default
    if client is not None:
        _default = client
    if factory is not None:
        _make_default = factory
