"""Connection limits at the HTTP layer, on raw sockets against a real server: the request head's
timeout and size, the connection cap and the write timeout (api/connections.py)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from layerserve.protocol import FRAME_CONTENT_TYPE
from tests.probes import rss_bytes, watch_health
from tests.server import ServerProcess

HEADER_TIMEOUT_S, MAX_HEADER_BYTES, MAX_CONNECTIONS, WRITE_TIMEOUT_S = 1.0, 8192, 24, 1.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("http-limits") / "state",
                         "--header-timeout-s", str(HEADER_TIMEOUT_S), "--max-header-bytes", str(MAX_HEADER_BYTES),
                         "--max-connections", str(MAX_CONNECTIONS), "--write-timeout-s", str(WRITE_TIMEOUT_S)).start()
    yield proc
    proc.stop()


def _connect(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_idle_connection_is_closed_after_the_header_timeout(guarded: ServerProcess) -> None:
    with _connect(guarded) as sock:
        start = time.monotonic()
        answer = _read_until_closed(sock)  # before the fix: no answer, recv times out
        waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert HEADER_TIMEOUT_S * 0.5 < waited < HEADER_TIMEOUT_S + 3


def _assert_slow_head_cut(sock: socket.socket) -> None:
    """Send a head one byte every 0.2 s: the server answers 408 or closes within the timeout."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    start, closed = time.monotonic(), False
    while time.monotonic() - start < HEADER_TIMEOUT_S + 4:
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.2)
    answer = b"" if closed else _read_until_closed(sock)
    assert closed or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - start < HEADER_TIMEOUT_S + 4


def test_head_sent_byte_by_byte_is_cut_at_the_header_timeout(guarded: ServerProcess) -> None:
    """A slow head: each byte keeps the connection busy, none resets the deadline."""
    with _connect(guarded) as sock:
        _assert_slow_head_cut(sock)


def test_oversized_head_is_431(guarded: ServerProcess) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n")
        answer = _read_until_closed(sock)  # before the fix: 200
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_huge_head_does_not_stall_the_loop(guarded: ServerProcess) -> None:
    """32 MiB of one header value: refused after the limit, not parsed (before: seconds of stall, then 200)."""
    with watch_health(guarded.url) as health, _connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(32):
                sock.sendall(b"a" * (1024 * 1024))
            sock.sendall(b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    health.assert_live()


def test_head_under_the_limit_is_served(guarded: ServerProcess) -> None:
    response = httpx.get(guarded.url + "/healthz", headers={"X-Pad": "a" * (MAX_HEADER_BYTES // 2)})
    assert response.status_code == 200


def test_connections_past_the_cap_are_refused_and_the_idle_ones_expire(guarded: ServerProcess) -> None:
    held = [_connect(guarded) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every one accepted by the server
        with _connect(guarded) as extra:
            answer = _read_until_closed(extra)  # before the fix: accepted, and no answer ever
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        time.sleep(HEADER_TIMEOUT_S + 1.0)  # the held ones sent no head: closed by now
        assert httpx.get(guarded.url + "/healthz", timeout=5).status_code == 200
        for sock in held:
            sock.settimeout(5)
            assert _read_until_closed(sock).startswith(b"HTTP/1.1 408")
    finally:
        for sock in held:
            sock.close()


def test_unread_responses_are_dropped_after_the_write_timeout(guarded: ServerProcess) -> None:
    """Clients that never read a 32 MB response: the server lets go of it (and of the memory)."""
    http = httpx.Client(base_url=f"{guarded.url}/v1/graphs/slowreader", timeout=30)
    assert http.post("/layers", json={"class": "Dense", "name": "big", "config": {"units": 4096}}).status_code == 201
    assert http.post("/layers/big/build", json={"input_shape": [None, 2048]}).status_code == 200
    assert guarded.proc is not None
    baseline = rss_bytes(guarded.proc.pid)
    request = (b"GET /v1/graphs/slowreader/layers/big/weights HTTP/1.1\r\nHost: x\r\n"
               b"Accept: " + FRAME_CONTENT_TYPE.encode() + b"\r\n\r\n")
    readers = []
    for _ in range(4):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.settimeout(30)
        sock.connect(("127.0.0.1", guarded.port))
        sock.sendall(request)
        readers.append(sock)
    try:
        time.sleep(WRITE_TIMEOUT_S + 3)
        grown = rss_bytes(guarded.proc.pid) - baseline
        received = [len(_read_until_closed(sock)) for sock in readers]
    finally:
        for sock in readers:
            sock.close()
    assert all(size < 32 * 1024 * 1024 for size in received), received  # before the fix: whole responses
    assert grown < 64 * 1024 * 1024, f"RSS grew {grown / 2**20:.0f} MiB"  # before: +128 MiB pinned
    http.close()


def _read_response(sock: socket.socket) -> bytes:
    """One whole response on a kept-alive connection (its head and ``content-length`` bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_later_head_on_a_kept_alive_connection_is_cut_at_the_header_timeout(guarded: ServerProcess) -> None:
    """The head timer starts with a head left incomplete, on the first request or any later one."""
    with _connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        _assert_slow_head_cut(sock)


def test_head_and_a_body_longer_than_the_head_limit_in_one_write_are_served(guarded: ServerProcess) -> None:
    """A small head followed at once by a body far past ``--max-header-bytes``: only the head counts."""
    http = httpx.Client(base_url=f"{guarded.url}/v1/graphs/onewrite", timeout=30)
    assert http.post("/layers", json={"class": "Dense", "name": "d", "config": {"units": 4}}).status_code == 201
    body = b'{"inputs": [{"dtype": "float32", "shape": [1, 4], "data": [1, 2, 3, 4]}]' + b" " * (8 * MAX_HEADER_BYTES) + b"}"
    request = (b"POST /v1/graphs/onewrite/layers/d/apply HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
               b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with _connect(guarded) as sock:
        for _ in range(2):  # and again on the same connection
            sock.sendall(request)
            answer = _read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b'"shape":[1,4]' in answer
    http.close()
