"""Client errors a program can act on: the 503 family with the server's Retry-After, bounded
jittered retries of idempotent calls, conflicts as their own type, the request id on every
exception; process and build-info metrics."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import layerserve
from layerserve import exceptions as ex
from layerserve._core import layer_path
from tests.server import ServerProcess, free_port


def _locked(state: Path) -> int:
    """Hold the state directory's lock, as a previous server that has not exited yet would."""
    state.mkdir(parents=True)
    fd = os.open(state / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _refused(url: str, method: str) -> float:
    """How many ``method`` requests the server answered 503."""
    text = httpx.get(url + "/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "layerserve_requests_total" and s.labels.get("status") == "503"
               and s.labels.get("method") == method]
    return sum(s.value for s in samples)


def _wait_alive(url: str) -> None:
    while True:  # bounded by the test run's timeout
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def test_not_ready_is_unavailable_with_retry_after_and_retried_only_when_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = _locked(state)
    server = ServerProcess(state).launch()
    try:
        _wait_alive(server.url)
        raw = httpx.get(server.url + "/v1/graphs/default/layers", timeout=5)
        assert (raw.status_code, raw.headers["retry-after"]) == (503, "1")
        conn = layerserve.Connection(server.url)
        started = time.monotonic()
        with pytest.raises(ex.NotReadyError) as caught:
            conn.list_layers()
        waited = time.monotonic() - started
        error = caught.value
        assert isinstance(error, ex.UnavailableError) and isinstance(error, RuntimeError)
        assert (error.status, error.code, error.retry_after) == (503, "not_ready", 1.0)
        assert error.request_id and len(error.request_id) == 32
        assert 3.0 <= waited < 3 * 5.0 * 1.5 + 5  # three waits of Retry-After (1 s) with jitter, bounded
        with pytest.raises(ex.NotReadyError):
            conn.layers.Dense(2)  # POST: the server may have acted on it, so it is not retried
        assert _refused(server.url, "POST") == 1
        assert _refused(server.url, "GET") == 1 + 4  # the raw GET, then the call and its 3 retries
        conn.close()
    finally:
        os.close(fd)
        server.stop()


def test_an_idempotent_call_succeeds_once_the_server_is_ready(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = _locked(state)
    server = ServerProcess(state).launch()
    try:
        _wait_alive(server.url)
        release = threading.Timer(0.5, os.close, args=(fd,))
        release.start()
        with layerserve.Connection(server.url) as conn:
            assert conn.list_layers() == []  # refused while starting, retried, answered once ready
        release.join()
        assert _refused(server.url, "GET") >= 1
    finally:
        server.stop()


def test_conflicts_are_their_own_type(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2)
    dense(np.ones((1, 3), np.float32))
    call = conn._prepare("PUT", layer_path(conn.graph, dense.id, "/weights"), {},
                         [np.zeros((3, 2), np.float32), np.zeros(2, np.float32)],
                         request_key="weights")
    call.headers["if-match"] = '"999999"'
    with pytest.raises(ex.ConflictError) as caught:
        conn.send(call)
    assert isinstance(caught.value, ValueError) and caught.value.code == "version_conflict"
    assert caught.value.status == 409 and caught.value.request_id == call.request_id


def test_every_exception_carries_the_request_id(conn: layerserve.Connection, server: ServerProcess) -> None:
    with pytest.raises(ex.NotFoundError) as missing:
        conn.call("GET", f"/v1/graphs/{conn.graph}/variables/nope:0")
    assert missing.value.request_id and len(missing.value.request_id) == 32
    with pytest.raises(TypeError) as bad:
        conn.layers.Dense(2, bogus=1)
    assert isinstance(bad.value, ex.LayerServeError) and bad.value.request_id
    closed = layerserve.Connection(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ex.TransportError) as unreachable:
        closed.call("POST", "/v1/graphs/default/layers", {"class": "Dense", "config": {"units": 1}})
    assert unreachable.value.request_id and len(unreachable.value.request_id) == 32
    closed.close()
    # The id the client sends is the one the server logs and echoes.
    response = httpx.get(server.url + "/healthz", headers={"x-request-id": missing.value.request_id})
    assert response.headers["x-request-id"] == missing.value.request_id


def test_process_and_build_info_metrics(server: ServerProcess) -> None:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)}
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert "process_cpu_seconds" in families and "python_info" in families
    [build] = families["layerserve_build_info"].samples
    assert build.value == 1.0 and build.labels["version"] == layerserve.__version__
    assert build.labels["onnxruntime"].startswith("onnxruntime")
