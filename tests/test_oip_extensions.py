"""The Open Inference Protocol on every /v2 path: 404 and 405 in the protocol's body, and the
repository index and statistics extensions, through tritonclient."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _raise_if_error
from tritonclient.utils import InferenceServerException

import layerserve
from tests.server import ServerProcess


@pytest.fixture
def v2(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    tc = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield tc
    tc.close()


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v2/nothing/here", 404), ("GET", "/v2/models/x/versions/1/nope", 404),
    ("DELETE", "/v2/health/live", 405), ("PUT", "/v2/models/m/infer", 405), ("GET", "/v2/repository/index", 405),
])
def test_unknown_paths_and_methods_answer_the_protocol_body(server: ServerProcess, method: str, path: str,
                                                            status: int) -> None:
    response = httpx.request(method, server.url + path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    native = httpx.get(server.url + "/v1/nothing/here")
    assert native.status_code == 404 and set(native.json()["error"]) == {"code", "message", "details"}


def test_tritonclient_reads_a_404_under_v2(v2: triton.InferenceServerClient) -> None:
    """tritonclient formats the error of any /v2 response from its ``error`` string (a native body crashed it)."""
    response = v2._get("v2/no/such/route", None, None)
    with pytest.raises(InferenceServerException, match=r"Not Found"):
        _raise_if_error(response)


def test_repository_index(conn: layerserve.Connection, server: ServerProcess,
                          v2: triton.InferenceServerClient) -> None:
    dense = conn.layers.Dense(2)
    index = v2.get_model_repository_index()
    entry = {"name": f"{conn.graph}.{dense.name}", "version": "1", "state": "READY"}
    assert entry in index
    assert all(set(e) == {"name", "version", "state"} for e in index)
    assert httpx.post(server.url + "/v2/repository/index", json={"ready": True}).json() == index
    bad = httpx.post(server.url + "/v2/repository/index", json={"ready": "yes"})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    assert "model_repository" in v2.get_server_metadata()["extensions"]


def test_model_statistics(conn: layerserve.Connection, v2: triton.InferenceServerClient) -> None:
    dense = conn.layers.Dense(2)
    model = f"{conn.graph}.{dense.name}"
    x = np.ones((3, 4), np.float32)
    dense(x)  # native apply
    inp = triton.InferInput("input_0", [3, 4], "FP32")
    inp.set_data_from_numpy(x)
    v2.infer(model, [inp])
    bad = triton.InferInput("input_0", [3, 5], "FP32")
    bad.set_data_from_numpy(np.ones((3, 5), np.float32))
    with pytest.raises(InferenceServerException):
        v2.infer(model, [bad])
    [stats] = v2.get_inference_statistics(model)["model_stats"]
    assert (stats["name"], stats["version"], stats["inference_count"]) == (model, "1", 2)
    assert stats["inference_stats"]["success"]["count"] == 2 and stats["inference_stats"]["success"]["ns"] > 0
    assert stats["inference_stats"]["fail"]["count"] == 1 and stats["last_inference"] > 0
    every = v2.get_inference_statistics()["model_stats"]
    assert model in [s["name"] for s in every]
    with pytest.raises(InferenceServerException):
        v2.get_inference_statistics(f"{conn.graph}.missing")
