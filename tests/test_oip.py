"""The Open Inference Protocol (KServe v2) endpoints, driven by the real tritonclient package."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import layerserve
from tests.server import ServerProcess

DATATYPES = {"float16": "FP16", "float32": "FP32", "float64": "FP64"}


@pytest.fixture
def v2(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    tc = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield tc
    tc.close()


def _infer(tc: triton.InferenceServerClient, model: str, x: np.ndarray, binary: bool,
           **kw: object) -> np.ndarray:
    inp = triton.InferInput("input_0", list(x.shape), DATATYPES[x.dtype.name])
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("output_0", binary_data=binary)
    return tc.infer(model, [inp], outputs=[out], **kw).as_numpy("output_0")  # type: ignore[no-any-return]


def test_server_health_and_metadata(v2: triton.InferenceServerClient) -> None:
    assert v2.is_server_live() and v2.is_server_ready()
    meta = v2.get_server_metadata()
    assert meta["name"] == "layerserve" and "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_infer_json_and_binary_match_the_native_apply(conn: layerserve.Connection, v2: triton.InferenceServerClient,
                                                      dtype: str) -> None:
    dense = conn.layers.Dense(7, activation="tanh", dtype=dtype)
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(dtype)
    native = dense(x)
    model = f"{conn.graph}.{dense.name}"
    for binary in (True, False):
        y = _infer(v2, model, x, binary)
        assert y.dtype == native.dtype and y.shape == (5, 7)
        assert np.array_equal(y.view(np.uint8), native.view(np.uint8)), f"binary={binary}"
    meta = v2.get_model_metadata(model)
    assert meta["inputs"] == [{"name": "input_0", "datatype": DATATYPES[dtype], "shape": [-1, 3]}]
    assert meta["outputs"] == [{"name": "output_0", "datatype": DATATYPES[dtype], "shape": [-1, 7]}]


def test_default_graph_model_name_and_first_infer_builds(server: ServerProcess,
                                                         v2: triton.InferenceServerClient) -> None:
    conn = layerserve.connect(server.url)  # the default graph: {model} is the bare layer name
    dense = conn.layers.Dense(2, name="oip.first")
    meta = v2.get_model_metadata("default.oip.first")
    assert meta["parameters"]["built"] is False and meta["inputs"][0]["shape"][0] == -1
    assert v2.is_model_ready("default.oip.first")
    x = np.ones((1, 4), np.float32)
    y = _infer(v2, "default.oip.first", x, binary=True)
    assert dense.built and np.array_equal(y, dense(x))
    assert v2.get_model_metadata("default.oip.first")["inputs"][0]["shape"] == [-1, 4]
    other = conn.layers.Dense(3)
    assert v2.get_model_metadata(other.name)["name"] == other.name
    conn.close()


def test_training_parameter_is_passed_through(conn: layerserve.Connection, v2: triton.InferenceServerClient) -> None:
    dense = conn.layers.Dense(3)
    x = np.ones((2, 2), np.float32)
    y = _infer(v2, f"{conn.graph}.{dense.name}", x, binary=True, parameters={"training": True})
    assert np.array_equal(y, dense(x, training=True))
    with pytest.raises(InferenceServerException, match="training"):
        _infer(v2, f"{conn.graph}.{dense.name}", x, binary=True, parameters={"training": "yes"})


def test_errors_use_the_protocol_body(conn: layerserve.Connection, server: ServerProcess,
                                      v2: triton.InferenceServerClient) -> None:
    dense = conn.layers.Dense(3)
    model = f"{conn.graph}.{dense.name}"
    dense(np.ones((1, 4), np.float32))
    with pytest.raises(InferenceServerException) as missing:
        _infer(v2, f"{conn.graph}.nope", np.ones((1, 4), np.float32), binary=True)
    assert missing.value.status() == "404"
    with pytest.raises(InferenceServerException) as wrong_shape:
        _infer(v2, model, np.ones((1, 5), np.float32), binary=False)
    assert wrong_shape.value.status() == "409"
    url = f"{server.url}/v2/models/{model}/infer"
    short_header = (b'{"inputs": [{"name": "input_0", "shape": [1, 4], "datatype": "FP32", '
                    b'"parameters": {"binary_data_size": 16}}]}')  # followed by 12 bytes, not 16
    cases = [
        (b"{not json", {}, 400),
        (b'{"inputs": [{"name": "input_0", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}]}', {}, 400),
        (b'{"inputs": [{"name": "input_0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]}', {}, 400),
        (b'{"inputs": [{"name": "other", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', {}, 400),
        (short_header + b"\0" * 12, {"Inference-Header-Content-Length": str(len(short_header))}, 400),
    ]
    for body, headers, status in cases:
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == status, body
        assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert "binary_data_size" in response.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/{conn.graph}.nope/ready").status_code == 404
