"""The apply routes as served ahead of FastAPI's router: same answers, headers and metrics;
input references on request; aligned frames."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

import layerserve
from layerserve.protocol import FRAME_CONTENT_TYPE, decode_frame, encode_frame, input_ref
from tests.server import ServerProcess

FRAME = {"content-type": FRAME_CONTENT_TYPE, "accept": FRAME_CONTENT_TYPE}
_graphs = itertools.count(1)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    base = f"{server.url}/v1/graphs/fast{next(_graphs)}"
    with httpx.Client(base_url=base) as session:
        yield session


def _create(http: httpx.Client, body: dict[str, object]) -> str:
    created = http.post("/layers", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_input_refs_come_when_asked_for_or_recorded(http: httpx.Client) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    dense = _create(http, {"class": "Dense", "config": {"units": 2}})
    plain = http.post(f"/layers/{dense}/apply", content=encode_frame({}, [x]), headers=FRAME)
    header, outputs = decode_frame(plain.content)
    assert "input_refs" not in header and outputs[0].shape == (3, 2)
    asked = http.post(f"/layers/{dense}/apply", content=encode_frame({"input_refs": True}, [x]), headers=FRAME)
    assert decode_frame(asked.content)[0]["input_refs"] == [input_ref(x)]
    tensor = {"dtype": "float32", "shape": [3, 4], "data": x.ravel().tolist()}
    as_json = http.post(f"/layers/{dense}/apply", json={"inputs": [tensor], "input_refs": True}).json()
    assert as_json["input_refs"] == [input_ref(x)]
    assert "input_refs" not in http.post(f"/layers/{dense}/apply", json={"inputs": [tensor]}).json()
    # An apply that records a loss keys it by the reference, and says which.
    regularized = _create(http, {"class": "Dense", "config": {"units": 2, "activity_regularizer": {"l2": 0.1}}})
    recorded = http.post(f"/layers/{regularized}/apply", content=encode_frame({}, [x]), headers=FRAME)
    assert decode_frame(recorded.content)[0]["input_refs"] == [input_ref(x)]
    losses = http.post(f"/layers/{regularized}/losses:for", json={"inputs": [input_ref(x)]}).json()["losses"]
    assert len(losses) == 1


def test_input_refs_must_be_a_boolean(http: httpx.Client) -> None:
    dense = _create(http, {"class": "Dense", "config": {"units": 2}})
    refused = http.post(f"/layers/{dense}/apply", content=encode_frame({"input_refs": "yes"}, [np.ones((1, 3), np.float32)]),
                        headers=FRAME)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("header", [{}, {"training": None}, {"training": False, "input_refs": True, "x" * 5: 1}])
def test_frames_start_payloads_at_a_multiple_of_8(header: dict[str, object]) -> None:
    body = encode_frame(header, [np.ones((2, 3), np.float32), np.ones(5, np.float64)])
    (head_length,) = struct.unpack_from("<I", body, 4)
    assert (8 + head_length) % 8 == 0
    assert len(body) - 8 - head_length == 2 * 3 * 4 + 5 * 8


def test_unpadded_frames_are_still_read(http: httpx.Client) -> None:
    x = np.full((1, 3), 2.0, np.float32)
    head = b'{"tensors":[{"dtype":"float32","shape":[1,3]}]}'  # 8 + 47 bytes: payload at an odd offset
    frame = b"LSF1" + struct.pack("<I", len(head)) + head + x.tobytes()
    dense = _create(http, {"class": "Dense", "config": {"units": 2, "kernel_initializer": "ones"}})
    answer = http.post(f"/layers/{dense}/apply", content=frame, headers=FRAME)
    assert answer.status_code == 200
    np.testing.assert_array_equal(decode_frame(answer.content)[1][0], [[6.0, 6.0]])


def test_apply_answers_carry_the_request_id_version_and_error_body(http: httpx.Client) -> None:
    dense = _create(http, {"class": "Dense", "config": {"units": 2}})
    ok = http.post(f"/layers/{dense}/apply", content=encode_frame({}, [np.ones((1, 3), np.float32)]),
                   headers={**FRAME, "x-request-id": "apply-7"})
    assert ok.headers["x-request-id"] == "apply-7" and ok.headers["x-layer-version"].isdigit()
    assert ok.headers["content-type"] == FRAME_CONTENT_TYPE and int(ok.headers["content-length"]) == len(ok.content)
    missing = http.post("/layers/nosuch/apply", content=encode_frame({}, [np.ones((1, 3), np.float32)]), headers=FRAME)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "layer_not_found"
    assert missing.headers["x-request-id"]
    wrong_type = http.post(f"/layers/{dense}/apply", content=b"x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert http.get(f"/layers/{dense}/apply").status_code == 405  # other methods still reach the router


def test_infer_through_the_versioned_path(conn: layerserve.Connection, server: ServerProcess) -> None:
    dense = conn.layers.Dense(2, kernel_initializer="ones")
    x = np.ones((1, 3), np.float32)
    dense(x)
    v2 = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inp = triton.InferInput("input_0", [1, 3], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = v2.infer(f"{conn.graph}.{dense.id}", [inp], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("output_0"), [[3.0, 3.0]])
    missing = httpx.post(f"{server.url}/v2/models/{conn.graph}.nosuch/versions/1/infer", json={"inputs": []})
    assert missing.status_code == 404 and "error" in missing.json()
