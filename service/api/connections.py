"""HTTP/1.1 connection limits, enforced where the bytes arrive: uvicorn's httptools protocol
with the four bounds it lacks.

- ``header_timeout_s``: a request head (request line and headers) must be complete this long
  after the connection opens or the head's first byte arrives; else 408 and the connection
  closes (the timer runs only while a head is incomplete, not per request). Idle and
  half-sent heads never hold a descriptor longer than this.
- ``max_header_bytes``: a head longer than this is refused with 431 before it is parsed (the
  parser buffers header values in Python, so a huge one would otherwise stall the loop).
- ``max_connections``: open connections per process; past it a new connection gets 503 and is
  closed at once, so the descriptors of the process never run out.
- ``write_timeout_s``: a client that leaves a response unread (the send buffer stays above its
  high-water mark) for this long is disconnected, which frees the buffered response.

A route never sees any of this: a refused connection never reaches the application.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ConnectionLimits", "guarded_protocol", "raise_descriptor_limit"]

_SPARE_DESCRIPTORS = 256  # files, the store, sockets to Redis: what the process needs beside clients


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_header_bytes: int
    max_connections: int
    write_timeout_s: float


def _refusal(status: bytes, message: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message)


_TIMEOUT = _refusal(b"408 Request Timeout", b"the request head did not arrive in time")
_TOO_LARGE = _refusal(b"431 Request Header Fields Too Large", b"the request head is too large")
_TOO_MANY = _refusal(b"503 Service Unavailable", b"too many open connections")


class _GuardedProtocol(HttpToolsProtocol):
    limits: ConnectionLimits  # set on the subclass that ``guarded_protocol`` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head, self._head_bytes, self._refused = True, 0, False
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport, self._refused = transport, True
            transport.write(_TOO_MANY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        if self._refused and self.flow is None:
            return  # never admitted: nothing of uvicorn's to release
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feeds the parser; while a head is arriving, at most one byte past the limit at a time.
        The head timer starts only for a head still incomplete after the bytes at hand: a head
        that arrives whole (nearly every one) costs no timer."""
        while data and not self._refused:
            if not self._in_head:
                super().data_received(data)
                return
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) > room + 1 and data.find(b"\r\n\r\n", 0, room + 1) < 0:
                chunk, data = data[:room + 1], data[room + 1:]
            else:  # all of it, or a head that ends within the limit (and body bytes): no copies
                chunk, data = data, b""
            self._head_bytes += len(chunk)
            super().data_received(chunk)
            if self._in_head and self._head_bytes > self.limits.max_header_bytes:
                self._refuse(_TOO_LARGE)
            elif self._in_head and self._head_bytes:
                self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next request's head, whenever it comes (keep-alive has its own timer)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and (self._head_bytes or self.cycle is None):
            self._refuse(_TIMEOUT)

    def _refuse(self, response: bytes) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout_s, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self.transport.abort()  # drops the unsent bytes; the route's pending send returns


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol bound to ``limits`` (pass it as ``uvicorn.run(http=...)``)."""
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), {"limits": limits})


def raise_descriptor_limit(max_connections: int) -> None:
    """Lift the soft descriptor limit towards the hard one, so that ``max_connections`` clients
    and the process's own files fit; the cap then binds before the operating system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
