"""The OpenAPI document tells the truth: it validates (openapi-spec-validator), documents no
internal notes or spurious parameters, and every error it documents is seen in a real response
whose body matches the documented schema."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from openapi_spec_validator import validate

import layerserve
from layerserve.protocol import FRAME_CONTENT_TYPE
from tests.server import ServerProcess

TOKEN, LIMITED = "t-open", "t-limited:only"


@pytest.fixture(scope="module")
def spec(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/openapi.json").json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Tokens (401, 403) and a small body limit (413)."""
    proc = ServerProcess(tmp_path_factory.mktemp("guarded") / "state", "--max-body-bytes", "4096",
                         env={"LAYERSERVE_TOKEN": f"{TOKEN},{LIMITED}"}).start()
    yield proc
    proc.stop()


def test_the_document_validates(spec: dict[str, Any]) -> None:
    validate(spec)


def test_no_internal_notes_spurious_parameters_or_framework_errors(spec: dict[str, Any]) -> None:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "layerserve.server" not in op.get("description", ""), (method, path)
            queries = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert not queries & {"model", "version", "graph", "layer"}, (method, path)  # path names only
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    infer = spec["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InferRequest"}
    apply_ok = spec["paths"]["/v1/graphs/{graph}/layers/{layer}/apply"]["post"]["responses"]["200"]["content"]
    assert "docs/binary-frame.md" in apply_ok[FRAME_CONTENT_TYPE]["schema"]["description"]


def test_docs_page_is_off_by_default(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/docs").status_code == 404
    assert httpx.get(server.url + "/metrics").headers["content-type"].startswith("text/plain")


def _not_ready_responses(tmp_path: Path) -> list[tuple[str, httpx.Response]]:
    state = tmp_path / "locked"
    state.mkdir()
    fd = os.open(state / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = ServerProcess(state).launch()
    try:
        while True:  # bounded by the test run's timeout
            try:
                if httpx.get(proc.url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        return [("native", httpx.get(proc.url + "/v1/graphs/default/layers")),
                ("oip", httpx.get(proc.url + "/v2/models/dense_1"))]
    finally:
        os.close(fd)
        proc.stop()


def _real_responses(conn: layerserve.Connection, guarded: ServerProcess, tmp_path: Path) -> list[tuple[str, Any]]:
    base = conn.url
    layers = f"{base}/v1/graphs/{conn.graph}/layers"
    dense = conn.layers.Dense(2)
    dense(np.ones((1, 3), np.float32))
    model = f"{base}/v2/models/{conn.graph}.{dense.name}/infer"
    auth = {"authorization": f"Bearer {TOKEN}"}
    limited = {"authorization": "Bearer t-limited"}
    return [
        ("native", httpx.post(layers, content=b"{not json", headers={"content-type": "application/json"})),
        ("native", httpx.get(f"{guarded.url}/v1/graphs/g/layers")),
        ("native", httpx.get(f"{guarded.url}/v1/graphs/other/layers", headers=limited)),
        ("native", httpx.get(f"{layers}/nope")),
        ("native", httpx.put(f"{layers}/{dense.id}/weights", json={"weights": []}, headers={"if-match": '"999999"'})),
        ("native", httpx.post(f"{guarded.url}/v1/graphs/g/layers", content=b"x" * 8192, headers=auth)),
        ("native", httpx.post(layers, content=b"{}", headers={"content-type": "text/plain"})),
        ("native", httpx.post(layers, json={"class": "Dense", "config": {"units": -1}})),
        ("oip", httpx.post(model, content=b"{not json", headers={"content-type": "application/json"})),
        ("oip", httpx.get(f"{guarded.url}/v2/models/m")),
        ("oip", httpx.get(f"{guarded.url}/v2/models/other.m", headers=limited)),
        ("oip", httpx.get(f"{base}/v2/models/{conn.graph}.nope")),
        ("oip", httpx.post(f"{guarded.url}/v2/models/m/infer", content=b"x" * 8192, headers=auth)),
        *_not_ready_responses(tmp_path),
    ]


def test_every_documented_error_is_a_real_response(spec: dict[str, Any], conn: layerserve.Connection,
                                                   guarded: ServerProcess, tmp_path: Path) -> None:
    schemas = {"native": spec["components"]["schemas"]["Error"], "oip": spec["components"]["schemas"]["OipError"]}
    documented: dict[str, set[int]] = {"native": set(), "oip": set()}
    for ops in spec["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                if ref.endswith(("/Error", "/OipError")):
                    documented["oip" if ref.endswith("/OipError") else "native"].add(int(status))
    seen: dict[str, set[int]] = {"native": set(), "oip": set()}
    for kind, response in _real_responses(conn, guarded, tmp_path):
        jsonschema.validate(response.json(), schemas[kind])
        seen[kind].add(response.status_code)
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
    assert documented["native"] == {400, 401, 403, 404, 409, 413, 415, 422, 503}
    assert documented["oip"] == {400, 401, 403, 404, 413, 503}
    assert documented == seen
