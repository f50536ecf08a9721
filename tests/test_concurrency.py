"""Concurrent clients: applies racing set_weights see one complete version; nothing is lost."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import httpx
import numpy as np

from layerserve.protocol import FRAME_CONTENT_TYPE, decode_frame, encode_frame
from tests.server import ServerProcess
from tests.threads import Spans, Worker, join_all

_graphs = itertools.count(1)
FRAME = {"content-type": FRAME_CONTENT_TYPE, "accept": FRAME_CONTENT_TYPE}
KERNEL = np.array([[1, 0, 2], [0, 1, 1], [3, 1, 0], [1, 2, 1]], np.float32)
BIAS = np.array([5, -7, 11], np.float32)
X = np.array([[1, 2, 3, 4], [0, 1, 0, 1]], np.float32)


def _version(v: int) -> list[np.ndarray]:
    """Kernel and bias scale differently with ``v``: a kernel of one version with the bias of
    another gives an output that matches no version."""
    return [KERNEL * v, BIAS * (v * v)]


def _output(v: int) -> np.ndarray:
    kernel, bias = _version(v)
    return X @ kernel + bias  # small integers: exact in float32 on any backend


def _run_threads(targets: list[Callable[[], None]], spans: Spans) -> None:
    """Run the targets together (released at once); fail on any error; check that their
    requests (each recorded in ``spans``) really were in flight at the same time."""
    start = threading.Barrier(len(targets))

    def released(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            start.wait(30)
            fn()
        return run

    workers = [Worker(released(fn)) for fn in targets]
    for worker in workers:
        worker.start()
    join_all(workers)
    spans.assert_overlapped()


def test_applies_racing_set_weights_see_one_complete_version(server: ServerProcess) -> None:
    base = f"{server.url}/v1/graphs/race{next(_graphs)}"
    setup = httpx.Client(base_url=base)
    assert setup.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 3}}).status_code == 201
    assert setup.post("/layers/fc/build", json={"input_shape": [None, 4]}).status_code == 200
    assert setup.put("/layers/fc/weights", content=encode_frame({}, _version(1)), headers=FRAME).status_code == 200
    setup.close()
    expected = {v: _output(v) for v in range(1, 41)}
    seen: list[np.ndarray] = []
    spans = Spans()

    def writer(versions: range) -> Callable[[], None]:
        def run() -> None:
            with httpx.Client(base_url=base) as http:
                for v in versions:
                    with spans.span():
                        put = http.put("/layers/fc/weights", content=encode_frame({}, _version(v)), headers=FRAME)
                    assert put.status_code == 200, put.text
        return run

    def reader() -> None:
        with httpx.Client(base_url=base) as http:
            for _ in range(40):
                with spans.span():
                    response = http.post("/layers/fc/apply", content=encode_frame({}, [X]), headers=FRAME)
                assert response.status_code == 200, response.text
                seen.append(decode_frame(response.content)[1][0].copy())

    _run_threads([writer(range(2, 21)), writer(range(21, 41)), reader, reader, reader, reader], spans)
    assert len(seen) == 160
    for y in seen:
        assert any(np.array_equal(y, want) for want in expected.values()), f"output of no single version: {y}"


def test_concurrent_creates_get_distinct_names(server: ServerProcess) -> None:
    base = f"{server.url}/v1/graphs/crowd{next(_graphs)}"
    names: list[str] = []
    spans = Spans()

    def creator() -> None:
        with httpx.Client(base_url=base) as http:
            for _ in range(8):
                with spans.span():
                    response = http.post("/layers", json={"class": "Dense", "config": {"units": 1}})
                assert response.status_code == 201, response.text
                names.append(response.json()["name"])

    _run_threads([creator] * 4, spans)
    assert sorted(names) == sorted(f"dense_{i}" for i in range(1, 33))


def test_concurrent_run_updates_lose_no_update(server: ServerProcess) -> None:
    """BatchNormalization in training mode leaves one pending update per apply; several
    clients running updates while others apply must apply each exactly once. With the same
    input every time, the final moving mean says how many updates were applied."""
    base = f"{server.url}/v1/graphs/bn{next(_graphs)}"
    http = httpx.Client(base_url=base)
    created = http.post("/layers", json={"class": "BatchNormalization", "name": "bn", "config": {"momentum": 0.9}})
    assert created.status_code == 201, created.text
    x = np.array([[2.0, 4.0], [4.0, 8.0]], np.float32)  # batch mean [3, 6]
    frame = encode_frame({"training": True}, [x])
    spans = Spans()

    def applier() -> None:
        with httpx.Client(base_url=base) as client_http:
            for _ in range(10):
                with spans.span():
                    response = client_http.post("/layers/bn/apply", content=frame, headers=FRAME)
                assert response.status_code == 200, response.text

    def runner() -> None:
        with httpx.Client(base_url=base) as client_http:
            for _ in range(10):
                with spans.span():
                    response = client_http.post("/layers/bn/updates:run", json={"inputs": None})
                assert response.status_code == 200, response.text

    _run_threads([applier, applier, applier, runner, runner], spans)
    assert http.post("/layers/bn/updates:run", json={"inputs": None}).status_code == 200
    assert http.get("/layers/bn/updates").json()["updates"] == []
    variables = http.get("/layers/bn/weights").json()
    moving_mean = np.asarray(variables["weights"][variables["names"].index("bn/moving_mean:0")]["data"])
    mean = np.zeros(2, np.float32)
    for _ in range(30):  # moving_mean <- moving_mean - (moving_mean - batch_mean) * (1 - momentum)
        mean = mean - (mean - np.array([3.0, 6.0], np.float32)) * np.float32(1.0 - 0.9)
    np.testing.assert_allclose(moving_mean, mean, rtol=1e-4)  # 29 or 31 updates would be 0.5% off
    http.close()
