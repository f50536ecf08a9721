"""Dynamic batching: concurrent applies share ONNX Runtime runs and still give the exact bits
of an apply that ran alone (or with batching off); binary and JSON tensors agree bit for bit."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

import layerserve
from layerserve._core import layer_path
from layerserve.server.plane.dispatch import INLINE_MAX_ELEMENTS
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


def _metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return float(re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M).group(1))  # type: ignore[union-attr]


def _one_row_load(server: ServerProcess, graph: str, layer: layerserve.layers.Layer, width: int) -> None:
    """Every client applies one-row inputs at once; each answer is checked against its input."""
    kernel = layer.get_weights()[0]

    def work(i: int) -> None:
        with layerserve.Connection(server.url, graph=graph) as own:
            mine = layerserve.layers.Layer._from_description(own, {"id": layer.id, "name": layer.name, "class": "Dense"})
            for k in range(REQUESTS):
                x = np.full((1, width), i * REQUESTS + k, np.float32)
                np.testing.assert_allclose(mine(x), x @ kernel, rtol=1e-5)

    _concurrently(work)


def test_the_batching_flags_set_the_cap_and_the_wait(tmp_path: Path) -> None:
    """``--max-batch-size`` caps the rows of one run, ``--max-queue-delay-ms`` is the wait."""
    cap = 3
    server = ServerProcess(tmp_path / "state", "--max-batch-size", str(cap), "--max-queue-delay-ms", "20").start()
    try:
        config = httpx.get(f"{server.url}/v1/config").json()
        assert (config["batching"], config["max_batch_size"], config["max_queue_delay_ms"]) == (True, cap, 20.0)
        with layerserve.Connection(server.url, graph="capped") as conn:
            # Inputs over INLINE_MAX_ELEMENTS never run on the loop, so concurrent ones meet in the
            # batcher whatever this machine's speed (a tiny layer would run inline, unbatched).
            width = INLINE_MAX_ELEMENTS + 1
            dense = conn.layers.Dense(8, kernel_initializer="ones", use_bias=False)
            dense.build([None, width])
            _one_row_load(server, "capped", dense, width)
        assert 2 <= _metric(server, "layerserve_batch_size_max") <= cap  # batched, never past the cap
    finally:
        server.stop()


def test_batching_off_runs_every_apply_alone(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--batching", "off").start()
    try:
        assert httpx.get(f"{server.url}/v1/config").json()["batching"] is False
        with layerserve.Connection(server.url, graph="alone") as conn:
            dense = conn.layers.Dense(8, kernel_initializer="ones", use_bias=False)
            dense.build([None, 16])
            _one_row_load(server, "alone", dense, 16)
        assert _metric(server, "layerserve_batch_size_count") == 0  # no run went through the batcher
        assert _metric(server, "layerserve_batch_size_max") == 0
    finally:
        server.stop()


def test_training_applies_are_never_batched_with_others(conn: layerserve.Connection, server: ServerProcess) -> None:
    """BatchNormalization in training normalizes by its own batch's statistics: an apply mixed
    into another's run would be normalized by both. Every concurrent training apply, each of
    other inputs, gets exactly the answer its batch alone gives."""
    bn = conn.layers.BatchNormalization(epsilon=1e-3)
    bn.build([None, 4])
    rng = np.random.default_rng(11)
    inputs = {i: [rng.standard_normal((3, 4)).astype(np.float32) * (i + 1) + i for _ in range(REQUESTS)]
              for i in range(CLIENTS)}
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        with layerserve.Connection(server.url, graph=conn.graph) as own:
            mine = layerserve.layers.Layer._from_description(
                own, {"id": bn.id, "name": bn.name, "class": "BatchNormalization"})
            results[i] = [mine(x, training=True) for x in inputs[i]]

    _concurrently(work)
    for i, xs in inputs.items():
        for x, got in zip(xs, results[i], strict=True):
            want = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + np.float32(1e-3))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # float32 batch moments
