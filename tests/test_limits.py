"""Limits and timeouts, all configurable and reported by ``GET /v1/config``; bounded records."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import layerserve
from layerserve.server.cli import _parser
from layerserve.server.config import Settings
from tests.server import ServerProcess
from tests.test_hostile import assert_error, tensor

LIMITS = {"max_body_bytes": 65536, "max_tensor_elements": 1000, "max_layers_per_graph": 3,
          "request_timeout_s": 2.0, "max_records_per_layer": 4, "max_sessions": 8}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = [arg for key, value in LIMITS.items() for arg in (f"--{key.replace('_', '-')}", str(value))]
    proc = ServerProcess(tmp_path_factory.mktemp("limits") / "state", *args).start()
    yield proc
    proc.stop()


def _raw(server: ServerProcess, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``), then read one response: headers, and the body they declare."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {data!r}"
            data += chunk
        headers, _, rest = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the middle of the response body"
            rest += chunk
        return headers + b"\r\n\r\n" + rest


def test_config_reports_every_limit_and_no_secret(limited: ServerProcess) -> None:
    config = httpx.get(limited.url + "/v1/config").json()
    for key, value in LIMITS.items():
        assert config[key] == value, key
    assert config["token"] is None


def test_declared_oversize_body_is_413_before_the_body_is_sent(limited: ServerProcess) -> None:
    """Only the headers are sent: an answer proves the server did not wait for the body."""
    head = (b"POST /v1/graphs/lim/layers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n")
    answer = _raw(limited, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer


def test_streamed_oversize_body_is_413_before_it_ends(limited: ServerProcess) -> None:
    """Chunked, with no declared length and no final chunk: refused once past the limit."""
    head = (b"PUT /v1/graphs/lim/layers/x/weights HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"8000\r\n" + b" " * 0x8000 + b"\r\n"
    answer = _raw(limited, head, chunk * 3)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_body_that_never_arrives_is_408(limited: ServerProcess) -> None:
    head = (b"POST /v1/graphs/lim/layers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    answer = _raw(limited, head, b'{"class": ')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer


def test_tensor_element_limit(limited: ServerProcess) -> None:
    http = httpx.Client(base_url=limited.url + "/v1/graphs/elements")
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).status_code == 201
    assert_error(http.post("/layers/fc/apply", json={"inputs": [tensor("float32", [1001, 1], [0.0] * 1001)]}), 422)
    assert http.post("/layers/fc/apply", json={"inputs": [tensor("float32", [100, 10], [0.0] * 1000)]}).is_success
    assert_error(http.post("/layers/fc/apply", json={"inputs": [tensor("float32", [2000, 10], [])]}), 422)
    big = http.post("/layers", json={"class": "Dense", "name": "big", "config": {"units": 101}})
    assert big.status_code == 201  # a 10 x 101 kernel is over the limit: refused at build
    assert_error(http.post("/layers/big/build", json={"input_shape": [None, 10]}), 422, "tensor_too_large")
    http.close()


def test_layers_per_graph_limit(limited: ServerProcess) -> None:
    http = httpx.Client(base_url=limited.url + "/v1/graphs/crowded")
    for _ in range(LIMITS["max_layers_per_graph"]):
        assert http.post("/layers", json={"class": "Dense", "config": {"units": 1}}).status_code == 201
    before = http.get("/layers").json()
    assert_error(http.post("/layers", json={"class": "Dense", "config": {"units": 1}}), 422, "too_many_layers")
    assert http.get("/layers").json() == before
    assert http.delete("/layers/dense_1").status_code == 204
    assert http.post("/layers", json={"class": "Dense", "config": {"units": 1}}).status_code == 201
    http.close()


def test_records_per_layer_are_bounded_oldest_first(limited: ServerProcess) -> None:
    """Activity losses are per-input records: only the newest ``max_records_per_layer`` stay,
    in memory and across a restart."""
    conn = layerserve.connect(limited.url, graph="records")
    dense = conn.layers.Dense(2, activity_regularizer=layerserve.regularizers.l2(1.0), name="fc")
    inputs = [np.full((1, 3), i, np.float32) for i in range(1, 11)]
    for x in inputs:
        dense.apply(x)
    limit = LIMITS["max_records_per_layer"]
    assert len(dense.losses) == limit
    assert all(dense.get_losses_for(x) == [] for x in inputs[:-limit])
    assert all(len(dense.get_losses_for(x)) == 1 for x in inputs[-limit:])
    conn.close()
    limited.stop()
    limited.start()
    conn = layerserve.connect(limited.url, graph="records")
    (again,) = [layer for layer in conn.list_layers() if layer.name == "fc"]
    assert len(again.losses) == limit and len(again.get_losses_for(inputs[-1])) == 1
    conn.close()


def test_limits_come_from_flags_and_the_environment() -> None:
    env = {"LAYERSERVE_MAX_LAYERS_PER_GRAPH": "7", "LAYERSERVE_REQUEST_TIMEOUT_S": "9.5", "LAYERSERVE_TOKEN": "a,b:g1"}
    settings = Settings.from_env(env)
    assert (settings.max_layers_per_graph, settings.request_timeout_s, settings.token) == (7, 9.5, ["a", "b:g1"])
    assert settings.public()["token"] == "2 token(s) configured"
    assert Settings(store="redis://:hunter2@cache:6379/0").public()["store"] == "redis://:***@cache:6379/0"
    flags = vars(_parser().parse_args(["serve", "--max-layers-per-graph", "3", "--request-timeout-s", "1.5",
                                       "--max-body-bytes", "10", "--max-tensor-elements", "5",
                                       "--max-records-per-layer", "2", "--max-sessions", "4"]))
    settings = Settings.from_env(env, **{k: v for k, v in flags.items() if k != "command"})
    assert (settings.max_layers_per_graph, settings.request_timeout_s, settings.max_body_bytes,
            settings.max_tensor_elements, settings.max_records_per_layer, settings.max_sessions) == (3, 1.5, 10, 5, 2, 4)


def _sessions_cached(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics").text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("layerserve_sessions_cached ")))


def test_the_session_cache_holds_at_most_max_sessions(limited: ServerProcess) -> None:
    """``--max-sessions 8``: twelve layers applied, eight sessions kept (least recently used
    evicted); an evicted layer compiles again and answers the same."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layers, first_answers = [], []
    for k in range(12):  # three layers per graph: the graph limit of this server
        conn = layerserve.Connection(limited.url, graph=f"sessions{k // 3}")
        layer = conn.layers.Dense(2, kernel_initializer=layerserve.initializers.Constant(k + 1))
        first_answers.append(layer(x))
        layers.append((conn, layer))
    assert _sessions_cached(limited) == LIMITS["max_sessions"]
    conn, oldest = layers[0]
    np.testing.assert_array_equal(oldest(x), first_answers[0])  # evicted, compiled again
    np.testing.assert_array_equal(first_answers[0], x @ np.ones((3, 2), np.float32))
    assert _sessions_cached(limited) == LIMITS["max_sessions"]
    for conn, _ in layers:
        conn.close()
