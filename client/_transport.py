"""The transports the connections send through, behind one small interface (``Transport`` and
``AsyncTransport``: one ``request`` and a close), and the lean HTTP/1.1 transport of the sync
``Connection``: keep-alive sockets and ``http.client``'s parser.

Through httpx, a small call costs 0.15-0.3 ms of Python on a small machine (building the
request and response objects, URL parsing, h11) and the request's head and body leave in
two writes, so the server wakes up twice. Here a call is one write of head and body, and
the answer is read with ``http.client``. It speaks plain ``http://`` only: ``Connection``
keeps httpx for ``https://`` and wherever the environment names a proxy (``usable_for``).
Failures raise httpx's exception types, so callers handle both paths alike.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.request
from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx

__all__ = ["AsyncHttpxTransport", "AsyncTransport", "HttpxTransport", "LeanHTTP", "Reply", "Transport",
           "sync_transport", "usable_for"]

Reply = tuple[int, dict[str, str], bytes]  # status, headers (lower-case names), body


class Transport(Protocol):
    """What a sync connection sends through. Failures raise ``httpx.TransportError``."""

    def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                params: dict[str, str] | None = None) -> Reply: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """What an asyncio connection sends through. Failures raise ``httpx.TransportError``."""

    async def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                      params: dict[str, str] | None = None) -> Reply: ...

    async def aclose(self) -> None: ...


class HttpxTransport:
    """httpx's pooled client: https, proxies, and whatever ``LeanHTTP`` does not speak."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float | None) -> None:
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                params: dict[str, str] | None = None) -> Reply:
        response = self._http.request(method, path, content=content, headers=headers, params=params or None)
        return response.status_code, dict(response.headers), response.content

    def close(self) -> None:
        self._http.close()


class AsyncHttpxTransport:
    def __init__(self, url: str, headers: dict[str, str], timeout: float | None) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)

    async def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                      params: dict[str, str] | None = None) -> Reply:
        response = await self._http.request(method, path, content=content, headers=headers, params=params or None)
        return response.status_code, dict(response.headers), response.content

    async def aclose(self) -> None:
        await self._http.aclose()


def sync_transport(url: str, headers: dict[str, str], timeout: float | None) -> Transport:
    """The lean transport for plain http without a proxy (a fraction of the overhead), else httpx."""
    return LeanHTTP(url, headers, timeout) if usable_for(url) else HttpxTransport(url, headers, timeout)

_COALESCE_BYTES = 256 * 1024  # larger bodies follow in a second write rather than a copy
_MAX_IDLE = 16  # sockets kept for reuse
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # what a path keeps unescaped (RFC 3986 pchar, and existing escapes)


def usable_for(url: str) -> bool:
    """Plain ``http://``, and no proxy from the environment (``HTTP_PROXY``/``ALL_PROXY``
    without a ``NO_PROXY`` match) that httpx would route the calls through."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, not in typeshed
    return not ("http" in proxies or "all" in proxies) or bool(bypass(parts.hostname or "", proxies))


def _alive(sock: socket.socket) -> bool:
    """An idle keep-alive socket the server has not closed (no EOF, no stray bytes)."""
    sock.setblocking(False)  # noqa: FBT003 - the socket API  # a socket with a timeout would wait for data first
    try:
        sock.recv(1, socket.MSG_PEEK)  # returns only at EOF or with stray bytes
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False
    return False


class LeanHTTP:
    """Calls to one server (``http://host:port[/prefix]``); thread-safe, one socket per call."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float | None) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        fixed = {"host": parts.netloc, "user-agent": "layerserve-client", **{k.lower(): v for k, v in headers.items()}}
        if any("\r" in v or "\n" in v for v in fixed.values()):
            raise ValueError("header values (the token) must not hold line breaks")
        self._fixed = [f"{k}: {v}".encode("latin-1") for k, v in fixed.items()]
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                params: dict[str, str] | None = None) -> Reply:
        """Status, headers (lower-case names) and body of one call."""
        target = quote(self._prefix + path, safe=_PATH_SAFE) + (f"?{urlencode(params)}" if params else "")
        lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), *self._fixed,
                 *(f"{k}: {v}".encode("latin-1") for k, v in headers.items())]
        if content is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: %d" % len(content or b""))
        head = b"\r\n".join([*lines, b"", b""])
        sock = self._acquire()
        try:
            response, body = self._exchange(sock, method, head, content or b"")
        except BaseException:
            sock.close()
            raise
        if response.will_close:
            sock.close()
        else:
            self._release(sock)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def _acquire(self) -> socket.socket:
        with self._lock:
            while self._idle:
                sock = self._idle.pop()
                if _alive(sock):
                    sock.settimeout(self._timeout)
                    return sock
                sock.close()
        try:
            sock = socket.create_connection(self._address, self._timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(sock)
                return
        sock.close()

    @staticmethod
    def _exchange(sock: socket.socket, method: str, head: bytes,
                  body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            if len(body) <= _COALESCE_BYTES:
                sock.sendall(head + body)  # one write: the server reads head and body at once
            else:
                sock.sendall(head)
                sock.sendall(body)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            return response, response.read()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except http.client.HTTPException as exc:
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
