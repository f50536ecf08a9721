"""Dynamic batching: concurrent applies share ONNX Runtime runs and still give the exact bits
of an apply that ran alone (or with batching off); binary and JSON tensors agree bit for bit."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import httpx
import numpy as np
import pytest

import layerserve
from layerserve._core import layer_path
from tests.server import ServerProcess

CLIENTS, REQUESTS = 24, 6


def _multi_request_runs(server: ServerProcess) -> int:
    """Runs of the batcher that carried more than one request, from /metrics."""
    text = httpx.get(f"{server.url}/metrics").text
    count = int(re.search(r"^layerserve_batch_size_count (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    alone = int(re.search(r'^layerserve_batch_size_bucket\{le="1"\} (\d+)', text, re.M).group(1))  # type: ignore[union-attr]
    return count - alone


def _inputs(seed: int, width: int) -> list[np.ndarray]:
    """Random inputs of 1 to 4 rows; some of rank 3 (another signature: never mixed in)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(REQUESTS):
        rows = int(rng.integers(1, 5))
        shape = (rows, 2, width) if i % 3 == 2 else (rows, width)
        out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def _concurrently(work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def _set_batching(conn: layerserve.Connection, layer: layerserve.layers.Layer, **options: object) -> None:
    conn.call("PATCH", layer_path(conn.graph, layer.id), {"batching": options})


def test_concurrent_applies_are_batched_and_bit_identical(conn: layerserve.Connection, server: ServerProcess) -> None:
    width = 1024
    dense = conn.layers.Dense(1024, activation="relu")
    inputs = {i: _inputs(i, width) for i in range(CLIENTS)}
    _set_batching(conn, dense, enabled=False)
    expected = {i: [dense(x) for x in xs] for i, xs in inputs.items()}
    _set_batching(conn, dense, enabled=True, max_queue_delay_ms=5)
    assert all(np.array_equal(dense(x), y) for x, y in zip(inputs[0], expected[0], strict=True))
    before = _multi_request_runs(server)
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        with layerserve.Connection(server.url, graph=conn.graph) as own:
            mine = layerserve.layers.Layer._from_description(own, {"id": dense.id, "name": dense.name, "class": "Dense"})
            results[i] = [mine(x) for x in inputs[i]]

    _concurrently(work)
    for i, xs in inputs.items():
        for x, got, want in zip(xs, results[i], expected[i], strict=True):
            assert got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32)), x.shape
    assert _multi_request_runs(server) > before, "no run carried more than one request"


def test_invalid_batching_options_are_rejected(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2)
    for options in ({"max_batch_size": 0}, {"enabled": "yes"}, {"window": 3}, {"max_queue_delay_ms": -1}):
        with pytest.raises(ValueError, match="batching"):
            _set_batching(conn, dense, **options)
    described = conn.call("GET", layer_path(conn.graph, dense.id)).body
    assert described["batching"] == {}
    created = conn.call("POST", f"/v1/graphs/{conn.graph}/layers",
                        {"class": "Dense", "config": {"units": 2}, "batching": {"max_batch_size": 8}}).body
    assert created["batching"] == {"max_batch_size": 8}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_binary_and_json_tensors_are_bit_identical(conn: layerserve.Connection, json_conn: layerserve.Connection,
                                                   dtype: str) -> None:
    dense = conn.layers.Dense(64, dtype=dtype)
    x = np.random.default_rng(7).standard_normal((16, 256)).astype(dtype)
    same = layerserve.layers.Layer._from_description(json_conn, {"id": dense.id, "name": dense.name, "class": "Dense"})
    json_conn.graph = conn.graph
    y_binary, y_json = dense(x), same(x)
    assert y_json.dtype == y_binary.dtype and np.array_equal(y_json.view(np.uint8), y_binary.view(np.uint8))
    weights = same.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights, dense.get_weights(), strict=True))
