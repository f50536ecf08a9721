"""The sync client's lean HTTP/1.1 transport against small scripted servers: minimal requests,
keep-alive reuse, reconnection after the server closed an idle socket, chunked answers,
transport errors, and the fallback to httpx where a proxy is configured."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import layerserve
from layerserve._transport import HttpxTransport, LeanHTTP, usable_for
from layerserve.exceptions import TransportError

Answer = Callable[[bytes], tuple[bytes, bool]]  # request bytes -> (response bytes, close after it)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return data


class _Server:
    """Answers each request with ``answer``; records the requests and the connections made."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.requests, self.connections = answer, [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            while request := _read_request(conn):
                self.requests.append(request)
                response, close = self.answer(request)
                conn.sendall(response)
                if close:
                    return


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
def scripted() -> Iterator[Callable[[Answer], _Server]]:
    servers: list[_Server] = []

    def start(answer: Answer) -> _Server:
        servers.append(_Server(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.sock.close()


def test_one_connection_is_reused_and_requests_are_minimal(scripted: Callable[[Answer], _Server]) -> None:
    server = scripted(lambda request: (_ok(b'{"status":"ok"}'), False))
    http = LeanHTTP(server.url + "/", {"authorization": "Bearer t0ken"}, 5.0)
    for _ in range(3):
        assert http.request("GET", "/healthz", {"accept": "application/json"}, None) == (
            200, {"content-type": "application/json", "content-length": "15"}, b'{"status":"ok"}')
    status, _, _ = http.request("POST", "/v1/graphs/g/layers", {"content-type": "application/json"}, b'{"a": 1}')
    assert status == 200 and server.connections == 1
    head = server.requests[-1].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /v1/graphs/g/layers http/1.1") and server.requests[-1].endswith(b'{"a": 1}')
    assert b"authorization: bearer t0ken" in head and b"content-length: 8" in head
    assert b"accept-encoding" not in head and b"connection:" not in head
    http.close()


def test_a_socket_the_server_closed_is_replaced(scripted: Callable[[Answer], _Server]) -> None:
    # The server closes after each answer without saying so, as an idle keep-alive expiry does.
    server = scripted(lambda request: (_ok(b"{}"), True))
    http = LeanHTTP(server.url, {}, 5.0)
    for _ in range(3):
        assert http.request("POST", "/x", {}, b"1")[0] == 200
        time.sleep(0.05)  # idle: the server's close reaches the client before the next call
    assert server.connections == 3
    http.close()


def test_chunked_answers_and_paths_that_need_escaping(scripted: Callable[[Answer], _Server]) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    server = scripted(lambda request: (chunked, False))
    http = LeanHTTP(server.url, {}, 5.0)
    assert http.request("GET", "/v1/graphs/g/variables/dense/kernel:0 x", {}, None, {"values": "true"})[2] == b"abcde"
    assert server.requests[-1].startswith(b"GET /v1/graphs/g/variables/dense/kernel:0%20x?values=true HTTP/1.1")
    http.close()


def test_transport_failures_are_transport_errors(scripted: Callable[[Answer], _Server]) -> None:
    server = scripted(lambda request: (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", True))
    conn = layerserve.Connection(server.url)
    with pytest.raises(TransportError):
        conn.call("POST", "/v1/graphs/g/layers", {"class": "Dense"})  # not retried: the server may have acted
    assert len(server.requests) == 1
    with pytest.raises(TransportError):
        conn.call("GET", "/healthz")  # idempotent: retried, then given up
    assert len(server.requests) == 5
    conn.close()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(TransportError):
        layerserve.Connection(f"http://127.0.0.1:{port}").call("POST", "/v1/graphs/g/layers", {})


def test_proxies_from_the_environment_keep_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert usable_for("http://127.0.0.1:8000") and not usable_for("https://example.org")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not usable_for("http://10.0.0.5:8000")
    monkeypatch.setenv("NO_PROXY", "10.0.0.5")
    assert usable_for("http://10.0.0.5:8000")
    assert isinstance(layerserve.Connection("http://10.1.0.9:8000").transport, HttpxTransport)


def test_a_line_break_in_the_token_is_refused() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        LeanHTTP("http://127.0.0.1:1", {"authorization": "Bearer a\r\nx-evil: 1"}, 1.0)


def test_applies_through_the_lean_transport_match_httpx(conn: layerserve.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    dense = conn.layers.Dense(3)
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    assert isinstance(conn.transport, LeanHTTP)
    lean = dense(x)
    monkeypatch.setattr(conn, "transport", HttpxTransport(conn.url, {}, 30.0))  # the same calls through httpx
    np.testing.assert_array_equal(dense(x), lean)
    assert dense.built


class Recording:
    """A transport of the test's own: records every call and answers from a table (the
    client core is I/O-free, so a connection works over any transport)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, dict[str, str], bytes]]) -> None:
        self.answers, self.calls = answers, []

    def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                params: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, path, content))
        return self.answers[(method, path)]

    def close(self) -> None:
        self.calls.append(("close", "", None))


def test_a_connection_sends_through_any_transport() -> None:
    described = b'{"id": "~1", "name": "dense_1", "class": "Dense"}'
    json_type = {"content-type": "application/json"}
    transport = Recording({("POST", "/v1/graphs/g/layers"): (201, json_type, described),
                           ("GET", "/v1/graphs/g/layers/~1/weights"): (200, json_type, b'{"names": [], "weights": []}'),
                           ("GET", "/v1/graphs/g/layers/~2"): (404, json_type, b'{"error": {"code": "layer_not_found", '
                                                                               b'"message": "no layer", "details": {}}}')})
    conn = layerserve.Connection("http://nowhere.invalid", graph="g", transport=transport)
    dense = conn.layers.Dense(2)
    assert (dense.name, dense.id) == ("dense_1", "~1") and dense.get_weights() == []
    with pytest.raises(layerserve.exceptions.NotFoundError):
        layerserve.layers.Layer._from_description(conn, {"id": "~2", "name": "x", "class": "Dense"}).get_config()
    conn.close()
    assert [c[:2] for c in transport.calls] == [("POST", "/v1/graphs/g/layers"), ("GET", "/v1/graphs/g/layers/~1/weights"),
                                               ("GET", "/v1/graphs/g/layers/~2"), ("close", "")]
