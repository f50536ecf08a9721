"""Request bodies are bounded before they are parsed: a frame's JSON header by
``--max-frame-header-bytes``, JSON bodies by ``--max-json-bytes`` (binary frames keep
``--max-body-bytes``); neither stalls the event loop nor multiplies memory."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from layerserve.protocol import FRAME_CONTENT_TYPE, FRAME_MAGIC, encode_frame
from tests.probes import rss_bytes, watch_health
from tests.server import ServerProcess
from tests.test_hostile import assert_error

MAX_JSON, MAX_FRAME_HEADER = 1024 * 1024, 64 * 1024
APPLY = "/v1/graphs/bodies/layers/fc/apply"


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("bodies") / "state", "--max-json-bytes", str(MAX_JSON),
                         "--max-frame-header-bytes", str(MAX_FRAME_HEADER), "--max-body-bytes", str(128 * 2**20),
                         "--max-tensor-elements", str(64 * 2**20), "--json-decode-threads", "1").start()
    with httpx.Client(base_url=proc.url + "/v1/graphs/bodies", timeout=30) as http:
        assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 1}}).status_code == 201
        assert http.post("/layers/fc/build", json={"input_shape": [None, 4]}).status_code == 200
    yield proc
    proc.stop()


def _numbers_json(size: int) -> bytes:
    """A JSON apply body of about ``size`` bytes of numbers (what costs the most to parse)."""
    count = size // 2
    return b'{"inputs": [{"dtype": "float32", "shape": [%d, 4], "data": [' % (count // 4) + \
        b"0," * (count // 4 * 4 - 1) + b"0]}]}"


def test_frame_header_over_its_cap_is_413_without_stalling(bounded: ServerProcess) -> None:
    head = b"[" + b"0," * (8 * 2**20) + b"0]"  # 16 MiB of JSON numbers as the frame's header
    frame = struct.pack("<4sI", FRAME_MAGIC, len(head)) + head
    with watch_health(bounded.url) as health:
        response = httpx.post(bounded.url + APPLY, content=frame, headers={"content-type": FRAME_CONTENT_TYPE},
                              timeout=60)
    assert_error(response, 413, "payload_too_large")  # before: parsed on the event loop, then 422
    health.assert_live()


def test_large_tensors_still_travel_as_frames(bounded: ServerProcess) -> None:
    x = np.ones((2**20, 4), np.float32)  # 16 MiB: over the JSON limit, fine as a frame
    response = httpx.post(bounded.url + APPLY, content=encode_frame({}, [x]), timeout=60,
                          headers={"content-type": FRAME_CONTENT_TYPE, "accept": FRAME_CONTENT_TYPE})
    assert response.status_code == 200, response.text[:300]


def test_json_body_over_the_json_limit_is_413_before_it_is_read(bounded: ServerProcess) -> None:
    response = httpx.post(bounded.url + APPLY, content=_numbers_json(4 * MAX_JSON),
                          headers={"content-type": "application/json"}, timeout=60)
    error = assert_error(response, 413, "payload_too_large")  # before: parsed, then answered
    assert "binary frame" in error["message"]


def test_oip_json_over_the_json_limit_is_413(bounded: ServerProcess) -> None:
    body = b'{"inputs": [{"name": "input_0", "shape": [1, 4], "datatype": "FP32", "data": [' + b"0," * MAX_JSON + b"0]}]}"
    response = httpx.post(bounded.url + "/v2/models/bodies.fc/infer", content=body, timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:200]
    assert isinstance(response.json()["error"], str)


def test_concurrent_large_json_bodies_neither_stall_nor_multiply_memory(bounded: ServerProcess) -> None:
    """Six clients at once, each with a body just under the JSON limit and six over it."""
    assert bounded.proc is not None
    pid, peak, stop = bounded.proc.pid, [0], threading.Event()
    baseline = rss_bytes(pid)

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.01)

    statuses: list[int] = []
    errors: list[str] = []

    def post(size: int) -> None:
        try:
            statuses.append(httpx.post(bounded.url + APPLY, content=_numbers_json(size), timeout=60,
                                       headers={"content-type": "application/json"}).status_code)
        except Exception as exc:  # recorded: the test fails on it
            errors.append(repr(exc))

    sampler = threading.Thread(target=sample)
    sampler.start()
    with watch_health(bounded.url) as health:
        clients = [threading.Thread(target=post, args=(size,)) for size in [MAX_JSON - 4096] * 6 + [8 * MAX_JSON] * 6]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
    stop.set()
    sampler.join()
    assert not errors, errors[:3]
    assert sorted(statuses) == [200] * 6 + [413] * 6, statuses
    health.assert_live()
    assert peak[0] - baseline < 128 * 2**20, f"RSS grew {(peak[0] - baseline) / 2**20:.0f} MiB"
