"""Metrics, request ids, structured logs, readiness and graceful shutdown."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

import layerserve
from layerserve.protocol import FRAME_CONTENT_TYPE, encode_frame
from tests.redis_server import RedisProcess
from tests.server import ServerProcess, free_port
from tests.test_hostile import assert_error


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_latency_errors_bytes_and_sessions(server: ServerProcess) -> None:
    conn = layerserve.connect(server.url, graph="metrics")
    dense = conn.layers.Dense(3, name="fc")
    before = _samples(server.url)
    for _ in range(3):
        dense.apply(np.ones((2, 4), np.float32))
    assert httpx.get(server.url + "/v1/graphs/metrics/layers/nosuch").status_code == 404
    after = _samples(server.url)
    apply_route = {"method": "POST", "route": "/v1/graphs/{graph}/layers/{layer}/apply"}
    assert (_value(after, "layerserve_requests_total", **apply_route, status="200")
            - _value(before, "layerserve_requests_total", **apply_route, status="200")) == 3
    assert _value(after, "layerserve_request_duration_seconds_count", **apply_route) >= 3
    assert _value(after, "layerserve_apply_duration_seconds_count", graph="metrics", layer=dense._id) == 3
    assert (_value(after, "layerserve_errors_total", code="layer_not_found", status="404")
            - _value(before, "layerserve_errors_total", code="layer_not_found", status="404")) == 1
    assert _value(after, "layerserve_request_bytes_total", route=apply_route["route"]) > 0
    assert _value(after, "layerserve_response_bytes_total", route=apply_route["route"]) > 0
    assert _value(after, "layerserve_sessions_cached") >= 1
    assert _value(after, "layerserve_ready") == 1
    families = {f.name for f in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)}
    assert {"layerserve_batch_size", "layerserve_requests_in_flight"} <= families
    dense_id = dense._id
    conn.close()
    assert httpx.delete(f"{server.url}/v1/graphs/metrics/layers/{dense_id}").status_code == 204
    assert _value(_samples(server.url), "layerserve_apply_duration_seconds_count", graph="metrics", layer=dense_id) == 0


def test_every_response_carries_a_request_id(server: ServerProcess) -> None:
    first, second = httpx.get(server.url + "/healthz"), httpx.get(server.url + "/v1/graphs/x/layers/y")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert httpx.get(server.url + "/healthz", headers={"x-request-id": "trace-42"}).headers["x-request-id"] == "trace-42"
    forged = httpx.get(server.url + "/healthz", headers={"x-request-id": "a b\tc" + "x" * 300})
    assert re.fullmatch("[0-9a-f]{32}", forged.headers["x-request-id"])  # not echoed: replaced by a fresh one
    assert re.fullmatch("[0-9a-f]{32}", first.headers["x-request-id"])


def _locked(state: Path) -> int:
    state.mkdir(parents=True)
    fd = os.open(state / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _wait_for(url: str, status: int, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s")


def test_not_ready_until_the_store_is_loaded_then_logs_are_json(tmp_path: Path) -> None:
    """The state directory is still held (as by a previous server that has not exited): the new
    one is alive but not ready, and refuses data requests with 503, until the lock is free."""
    state = tmp_path / "state"
    fd = _locked(state)
    server = ServerProcess(state, "--log-level", "info").launch()
    try:
        _wait_for(server.url + "/healthz", 200)
        body = httpx.get(server.url + "/readyz").json()
        assert body["ready"] is False and httpx.get(server.url + "/readyz").status_code == 503
        assert_error(httpx.get(server.url + "/v1/graphs/default/layers"), 503, "not_ready")
        ready = httpx.get(server.url + "/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        os.close(fd)  # releases the lock
        _wait_for(server.url + "/readyz", 200)
        traced = httpx.get(server.url + "/v1/graphs/default/layers", headers={"x-request-id": "find-me-7"})
        assert traced.status_code == 200
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(e["message"] == "request" and e.get("request_id") == "find-me-7" and e["status"] == 200
               for e in lines)
    assert any("locked by another process" in e["message"] for e in lines)
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in lines)


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path: Path) -> None:
    """A set_weights whose body is half sent when SIGTERM arrives still completes and is kept."""
    server = ServerProcess(tmp_path / "state").start()
    http = httpx.Client(base_url=server.url + "/v1/graphs/drain")
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).status_code == 201
    assert http.post("/layers/fc/build", json={"input_shape": [None, 2]}).status_code == 200
    http.close()
    new = [np.full((2, 2), 7, np.float32), np.full((2,), 8, np.float32)]
    body = encode_frame({}, new)
    head = (f"PUT /v1/graphs/drain/layers/fc/weights HTTP/1.1\r\nHost: x\r\nContent-Type: {FRAME_CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body[:10])
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        _wait_until_refused(server.port)  # shutdown has begun: no new connections
        sock.sendall(body[10:])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert server.proc.wait(30) == 0
    server.start()
    try:
        weights = httpx.get(server.url + "/v1/graphs/drain/layers/fc/weights").json()["weights"]
        assert [w["data"] for w in weights] == [[7.0] * 4, [8.0] * 2]
    finally:
        server.stop()


def _wait_until_refused(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError(f"port {port} still accepted connections after {timeout} s")


def test_start_up_retries_until_the_store_answers(tmp_path: Path) -> None:
    """Redis is not up yet: the server is alive, not ready, says why, and becomes ready once it is."""
    redis = RedisProcess(tmp_path / "redis", port=free_port())
    server = ServerProcess(tmp_path / "state", "--store", redis.url).launch()
    try:
        _wait_for(server.url + "/healthz", 200)
        deadline = time.monotonic() + 60
        while not (body := httpx.get(server.url + "/readyz").json())["startup_error"]:
            assert time.monotonic() < deadline, "no start-up attempt failed within 60 s"
            time.sleep(0.05)  # the first attempt is under way
        assert body["ready"] is False and "redis" in body["startup_error"].lower()
        redis.start()
        _wait_for(server.url + "/readyz", 200)
        assert httpx.get(server.url + "/readyz").json()["startup_error"] is None
        assert httpx.post(server.url + "/v1/graphs/late/layers", json={"class": "Dense", "config": {"units": 1}}
                          ).status_code == 201
    finally:
        server.stop()
        redis.stop()
