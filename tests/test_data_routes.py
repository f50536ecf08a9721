"""The checks every request passes, on the two data routes themselves: ``POST .../apply`` and
``POST /v2/models/{model}/infer`` are served ahead of FastAPI's router, so auth (401/403), body
limits (413), readiness (503), names (422) and the processing timeout (503) are tested there,
each with the exact status and error body (the contract's on /v1, the protocol's on /v2)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from layerserve.protocol import FRAME_CONTENT_TYPE, encode_frame
from tests.server import ServerProcess
from tests.test_hostile import assert_error
from tests.test_observability import _locked, _wait_for

ADMIN = "admin-5e0d2c4b7a"
LIMITED = "team-a-93f1a6c2d8"
LIMIT = 65536
X = np.ones((1, 3), np.float32)
ROUTES = ["apply", "infer"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("data-routes") / "state", "--token", ADMIN,
                         "--token", f"{LIMITED}:team_a", "--max-body-bytes", str(LIMIT)).start()
    for graph in ("team_a", "team_b"):
        _ok(httpx.post(f"{proc.url}/v1/graphs/{graph}/layers", headers=_bearer(ADMIN),
                       json={"class": "Dense", "name": "fc", "config": {"units": 2}}), 201)
        _ok(httpx.post(f"{proc.url}/v1/graphs/{graph}/layers/fc/build", headers=_bearer(ADMIN),
                       json={"input_shape": [None, 3]}), 200)
    yield proc
    proc.stop()


def _ok(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _request(route: str, graph: str, layer: str) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of one valid request on ``route`` for ``graph``'s ``layer``."""
    if route == "apply":
        return (f"/v1/graphs/{graph}/layers/{layer}/apply", {"content-type": FRAME_CONTENT_TYPE},
                encode_frame({}, [X]))
    body = httpx.Request("POST", "/", json={"inputs": [
        {"name": "input_0", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 1.0, 1.0]}]}).read()
    return f"/v2/models/{graph}.{layer}/infer", {"content-type": "application/json"}, body


def _post(server: ServerProcess, route: str, *, graph: str = "team_a", layer: str = "fc",
          token: str | None = ADMIN, body: bytes | None = None, timeout: float = 30.0) -> httpx.Response:
    path, headers, valid = _request(route, graph, layer)
    if token is not None:
        headers.update(_bearer(token))
    return httpx.post(server.url + path, content=valid if body is None else body, headers=headers, timeout=timeout)


def assert_refused(response: httpx.Response, route: str, status: int, code: str) -> None:
    """The contract's body on the native route; the protocol's ``{"error": "<msg>"}`` on /v2."""
    if route == "apply":
        assert_error(response, status, code)
        return
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error, response.text


@pytest.mark.parametrize("route", ROUTES)
def test_the_routes_answer_a_valid_request(guarded: ServerProcess, route: str) -> None:
    """The positive control of every refusal below: the same request with what it needs."""
    for token in (ADMIN, LIMITED):
        response = _post(guarded, route, token=token)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token-1", ADMIN + "x"], ids=["missing", "wrong", "longer"])
def test_no_valid_token_is_401(guarded: ServerProcess, route: str, token: str | None) -> None:
    response = _post(guarded, route, token=token)
    assert_refused(response, route, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ROUTES)
def test_a_token_for_another_graph_is_403(guarded: ServerProcess, route: str) -> None:
    assert_refused(_post(guarded, route, graph="team_b", token=LIMITED), route, 403, "forbidden")


@pytest.mark.parametrize("route", ROUTES)
def test_a_declared_oversize_body_is_413(guarded: ServerProcess, route: str) -> None:
    response = _post(guarded, route, body=b" " * (LIMIT + 1))
    assert_refused(response, route, 413, "payload_too_large")


@pytest.mark.parametrize("route", ROUTES)
def test_a_streamed_oversize_body_is_413(guarded: ServerProcess, route: str) -> None:
    path, headers, _ = _request(route, "team_a", "fc")

    def chunks() -> Iterator[bytes]:  # no declared length: counted as it arrives
        for _ in range(3):
            yield b" " * (LIMIT // 2)

    response = httpx.post(guarded.url + path, content=chunks(), headers={**headers, **_bearer(ADMIN)})
    assert_refused(response, route, 413, "payload_too_large")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("graph", "layer"), [("bad%24graph", "fc"), ("team_a", "bad%24layer"),
                                              ("g" * 65, "fc"), ("team_a", "x" * 129)],
                         ids=["graph-char", "layer-char", "graph-length", "layer-length"])
def test_a_bad_name_is_422(guarded: ServerProcess, route: str, graph: str, layer: str) -> None:
    assert_refused(_post(guarded, route, graph=graph, layer=layer), route, 422, "invalid_name")


@pytest.mark.parametrize("route", ROUTES)
def test_not_ready_is_503(tmp_path: Path, route: str) -> None:
    """The state directory is still held by another process: alive, not ready, refusing data."""
    state = tmp_path / "state"
    fd = _locked(state)
    server = ServerProcess(state).launch()
    try:
        _wait_for(server.url + "/healthz", 200)
        assert_refused(_post(server, route, token=None), route, 503, "not_ready")
        os.close(fd)
        fd = -1
        _wait_for(server.url + "/readyz", 200)
        response = _post(server, route, token=None)  # now the graph is simply missing
        assert_refused(response, route, 404, "graph_not_found")
    finally:
        if fd >= 0:
            os.close(fd)
        server.stop()


def _binary_infer(x: np.ndarray) -> tuple[dict[str, str], bytes]:
    """The protocol's binary extension: a JSON header, then the tensor's bytes."""
    header = httpx.Request("POST", "/", json={"inputs": [{
        "name": "input_0", "shape": list(x.shape), "datatype": "FP32",
        "parameters": {"binary_data_size": x.nbytes}}]}).read()
    return ({"content-type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
            header + x.tobytes())


@pytest.mark.parametrize("route", ROUTES)
def test_a_run_past_the_request_timeout_is_503(tmp_path: Path, route: str) -> None:
    """An apply still running when the request timeout ends: 503 processing_timeout (its body
    of 2 MB arrived well within the timeout, so it is not the 408 of a slow body)."""
    setup = ServerProcess(tmp_path / "state").start()  # made under the default timeout
    try:
        base = f"{setup.url}/v1/graphs/slow/layers"
        _ok(httpx.post(base, json={"class": "Conv2D", "name": "big",
                                   "config": {"filters": 256, "kernel_size": 9, "padding": "same"}}), 201)
        _ok(httpx.post(f"{base}/big/build", json={"input_shape": [None, 64, 64, 64]}), 200)
    finally:
        setup.stop()
    server = ServerProcess(tmp_path / "state", "--request-timeout-s", "0.1").start()
    try:
        x = np.ones((2, 64, 64, 64), np.float32)  # compiling, then some 22 GFLOP: far over 0.1 s
        if route == "apply":
            path, headers, body = "/v1/graphs/slow/layers/big/apply", {"content-type": FRAME_CONTENT_TYPE}, \
                encode_frame({}, [x])
        else:
            path = "/v2/models/slow.big/infer"
            headers, body = _binary_infer(x)
        response = httpx.post(server.url + path, content=body, headers=headers, timeout=60)
        assert_refused(response, route, 503, "processing_timeout")
    finally:
        server.stop()
