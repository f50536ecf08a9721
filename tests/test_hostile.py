"""Hostile input: every bad request gets a 4xx with the contract's error body, and changes nothing."""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import layerserve
from layerserve.protocol import FRAME_CONTENT_TYPE, FRAME_MAGIC, encode_frame
from tests.server import ServerProcess

_graphs = itertools.count(1)
FRAME = {"content-type": FRAME_CONTENT_TYPE}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error body: ``{"error": {"code", "message", "details"}}``."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def tensor(dtype: str, shape: list[Any], data: list[Any]) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data": data}


@pytest.fixture
def graph(server: ServerProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A graph holding one built Dense layer ``fc`` (3 -> 2) with known weights."""
    name = f"hostile{next(_graphs)}"
    http = httpx.Client(base_url=f"{server.url}/v1/graphs/{name}", timeout=30.0)
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).status_code == 201
    assert http.post("/layers/fc/build", json={"input_shape": [None, 3]}).status_code == 200
    weights = [tensor("float32", [3, 2], [1, 2, 3, 4, 5, 6]), tensor("float32", [2], [0.5, -0.5])]
    assert http.put("/layers/fc/weights", json={"weights": weights}).status_code == 200
    yield http, name
    http.close()


def _state(http: httpx.Client, server: ServerProcess, name: str) -> tuple[Any, ...]:
    """Everything a rejected request must leave as it was: layers, weights, losses, files."""
    layers = http.get("/layers").json()
    weights = http.get("/layers/fc/weights").json()
    files = sorted(str(p.relative_to(server.state_dir)) for p in server.state_dir.rglob("*"))
    manifest = (server.state_dir / "graphs" / name / "manifest.json").read_bytes()
    return layers, weights, http.get("/layers/fc/losses").json(), files, manifest


BAD_TENSORS = [
    pytest.param(tensor("float32", [1, 3], [1, 2]), id="data-shorter-than-shape"),
    pytest.param(tensor("float32", [1, -3], [1, 2, 3]), id="negative-dim"),
    pytest.param(tensor("float32", [1, 10**30], []), id="huge-dim"),
    pytest.param(tensor("float32", [0, 2**62], []), id="huge-dim-zero-elements"),
    pytest.param(tensor("float32", [1] * 100, [1]), id="rank-100"),
    pytest.param(tensor("float32", [2**20, 2**5], []), id="over-element-limit"),
    pytest.param(tensor("complex64", [1, 3], [1, 2, 3]), id="unknown-dtype"),
    pytest.param(tensor("float32", [1, 3], ["a", "b", "c"]), id="strings-as-data"),
    pytest.param(tensor("float32", [1, 3], [[1], [2], [3]]), id="nested-data"),
    pytest.param(tensor("float32", [1, 3], [1, 2, {}]), id="object-in-data"),
    pytest.param(tensor("int32", [1, 3], ["NaN", 1, 2]), id="nan-in-int"),
    pytest.param({"dtype": "float32", "shape": [1, 3]}, id="missing-data"),
    pytest.param([1, 2, 3], id="not-an-object"),
    pytest.param(tensor("float32", "3", [1, 2, 3]), id="shape-not-a-list"),
    pytest.param(tensor("float32", [1, True, 3], [1, 2, 3]), id="bool-dim"),
]


@pytest.mark.parametrize("bad", BAD_TENSORS)
def test_bad_json_tensors_are_422_and_change_nothing(server: ServerProcess, graph: tuple[httpx.Client, str],
                                                     bad: Any) -> None:
    http, name = graph
    before = _state(http, server, name)
    assert_error(http.post("/layers/fc/apply", json={"inputs": [bad]}), 422)
    assert_error(http.put("/layers/fc/weights", json={"weights": [bad, bad]}), 422)
    assert_error(http.post("/layers/fc/losses:for", json={"inputs": [bad]}), 422)
    assert _state(http, server, name) == before


def _frame(header: dict[str, Any], specs: list[dict[str, Any]], payload: bytes) -> bytes:
    head = json.dumps({**header, "tensors": specs}).encode()
    return struct.pack("<4sI", FRAME_MAGIC, len(head)) + head + payload


BAD_FRAMES = [
    pytest.param(_frame({}, [{"dtype": "float32", "shape": [1, 3]}], b"\0" * 11), id="payload-short"),
    pytest.param(_frame({}, [{"dtype": "float32", "shape": [1, 3]}], b"\0" * 13), id="payload-long"),
    pytest.param(_frame({}, [{"dtype": "float64", "shape": [1, 3]}], b"\0" * 12), id="dtype-size-mismatch"),
    pytest.param(_frame({}, [{"dtype": "float32", "shape": [1, -3]}], b""), id="negative-dim"),
    pytest.param(_frame({}, [{"dtype": "float32", "shape": [2**40, 2**40]}], b""), id="huge-dims"),
    pytest.param(_frame({}, [{"dtype": "bfloat16", "shape": [1, 3]}], b"\0" * 6), id="unknown-dtype"),
    pytest.param(_frame({}, ["float32"], b""), id="spec-not-an-object"),
    pytest.param(b"LSF1" + struct.pack("<I", 10**6) + b"{}", id="header-length-past-end"),
    pytest.param(b"LSF1" + struct.pack("<I", 40000) + b"[" * 40000, id="deeply-nested-header"),
    pytest.param(b"XXXX" + struct.pack("<I", 2) + b"{}", id="bad-magic"),
    pytest.param(b"LSF", id="truncated"),
    pytest.param(b"LSF1" + struct.pack("<I", 3) + b"\xff\xfe\xfd", id="header-not-utf8"),
    pytest.param(_frame({"training": "yes"}, [], b""), id="wrong-typed-field"),
    pytest.param(_frame({"surprise": 1}, [], b""), id="unknown-field"),
]


@pytest.mark.parametrize("body", BAD_FRAMES)
def test_bad_frames_are_4xx_and_change_nothing(server: ServerProcess, graph: tuple[httpx.Client, str],
                                               body: bytes) -> None:
    http, name = graph
    before = _state(http, server, name)
    for method, path in (("POST", "/layers/fc/apply"), ("PUT", "/layers/fc/weights")):
        response = http.request(method, path, content=body, headers=FRAME)
        assert 400 <= response.status_code < 500
        assert_error(response, response.status_code)
    assert _state(http, server, name) == before


BAD_BODIES = [
    pytest.param(b"{not json", "application/json", 400, "malformed_request", id="malformed-json"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "application/json", 400, None, id="deeply-nested-json"),
    pytest.param(b"[1, 2]", "application/json", 400, "malformed_request", id="json-array"),
    pytest.param(b'{"inputs": []}', "text/plain", 415, "unsupported_media_type", id="text-plain"),
    pytest.param(b'{"inputs": []}', "application/xml", 415, "unsupported_media_type", id="xml"),
    pytest.param(b'{"inputs": [], "extra": 1}', "application/json", 422, "invalid_request", id="unknown-field"),
    pytest.param(b'{"inputs": [], "training": "yes"}', "application/json", 422, None, id="wrong-type"),
    pytest.param(b'{"inputs": "x"}', "application/json", 422, None, id="inputs-not-a-list"),
    pytest.param(b"\xff\xfe{}", "application/json", 400, None, id="not-utf8"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_BODIES)
def test_malformed_bodies(server: ServerProcess, graph: tuple[httpx.Client, str], body: bytes, content_type: str,
                          status: int, code: str | None) -> None:
    http, name = graph
    before = _state(http, server, name)
    for path in ("/layers/fc/apply", "/layers"):
        assert_error(http.post(path, content=body, headers={"content-type": content_type}), status, code)
    assert _state(http, server, name) == before


BAD_CREATES = [
    pytest.param({"class": "NoSuchLayer", "config": {}}, "unknown_class", id="unknown-class"),
    pytest.param({"class": "Dense", "config": {"units": 2, "frobnicate": 1}}, "unknown_argument", id="unknown-kwarg"),
    pytest.param({"class": "Dense", "config": {"units": "abc"}}, None, id="units-abc"),
    pytest.param({"class": "Dense", "config": {"units": -1}}, None, id="units-negative"),
    pytest.param({"class": "Dense", "config": {"units": 2, "activation": 3}}, None, id="activation-int"),
    pytest.param({"class": "Dense", "config": {"units": 2, "use_bias": "no"}}, None, id="use-bias-string"),
    pytest.param({"class": "Dense", "config": {"units": 2, "kernel_size": [0]}}, None, id="kernel-size-on-dense"),
    pytest.param({"class": "Conv2D", "config": {"filters": 2, "kernel_size": [0]}}, None, id="kernel-size-zero"),
    pytest.param({"class": "Conv2D", "config": {"filters": 2, "kernel_size": "abc"}}, None, id="kernel-size-abc"),
    pytest.param({"class": "Dense", "dtype": "complex64", "config": {"units": 2}}, "unsupported_dtype", id="dtype"),
    pytest.param({"class": "Dense", "trainable": "yes", "config": {"units": 2}}, None, id="trainable-string"),
    pytest.param({"class": 7, "config": {}}, None, id="class-int"),
    pytest.param({"config": {"units": 2}}, None, id="class-missing"),
]


# Arguments TF's constructors check after the base class named the layer: a number is used up.
NAMED_BEFORE_CHECK = {"units-abc", "units-negative", "activation-int", "use-bias-string", "kernel-size-zero",
                      "kernel-size-abc", "dtype"}


@pytest.mark.parametrize(("body", "code"), BAD_CREATES)
def test_bad_creates_are_422(request: pytest.FixtureRequest, server: ServerProcess, graph: tuple[httpx.Client, str],
                             body: dict[str, Any], code: str | None) -> None:
    http, name = graph
    before = _state(http, server, name)
    assert_error(http.post("/layers", json=body), 422, code)
    if request.node.callspec.id not in NAMED_BEFORE_CHECK:
        assert _state(http, server, name) == before
        return
    assert _state(http, server, name)[:3] == before[:3]  # layers, weights and losses as they were
    made = http.post("/layers", json={"class": body["class"], "config": {"filters": 1, "kernel_size": 1}
                                      if body["class"] == "Conv2D" else {"units": 1}}).json()
    assert made["name"] == ("conv2d_2" if body["class"] == "Conv2D" else "dense_2")


BAD_NAMES = ["a/b", "../../etc", "..", "a\0b", "a b", " ", "tab\there", "x" * 10_000, "ünïcode", "a\nb", ""]


def test_bad_names_are_422_and_nothing_is_written_outside(server: ServerProcess,
                                                          graph: tuple[httpx.Client, str]) -> None:
    http, name = graph
    outside = server.state_dir.parent
    before_outside = sorted(p.name for p in outside.iterdir())
    before = _state(http, server, name)
    raw = httpx.Client(base_url=server.url, timeout=30.0)
    for bad in BAD_NAMES:
        assert_error(http.post("/layers", json={"class": "Dense", "name": bad, "config": {"units": 1}}), 422,
                     "invalid_name")
        assert_error(http.post("/layers", json={"class": "Dense", "config": {"units": 1, "name": bad}}), 422)
        if bad:  # a name in the path, percent-encoded so that it reaches the server as given
            quoted = "".join(f"%{byte:02X}" for byte in bad.encode())  # dots too: no client rewriting
            assert_error(raw.post(f"/v1/graphs/{quoted}/layers", json={"class": "Dense", "config": {"units": 1}}),
                         422, "invalid_name")
            assert_error(http.get(f"/layers/{quoted}"), 422, "invalid_name")
            assert_error(http.post(f"/layers/{quoted}/apply", json={"inputs": []}), 422, "invalid_name")
    raw.close()
    assert sorted(p.name for p in outside.iterdir()) == before_outside
    assert _state(http, server, name) == before
    graph_dirs = [p.name for p in (server.state_dir / "graphs").iterdir()]
    assert all(n.replace("_", "").replace("-", "").isalnum() for n in graph_dirs), graph_dirs


def test_unknown_graphs_layers_and_variables_are_404(server: ServerProcess, graph: tuple[httpx.Client, str]) -> None:
    http, _ = graph
    raw = httpx.Client(base_url=server.url)
    assert_error(raw.get("/v1/graphs/nosuchgraph/layers"), 404, "graph_not_found")
    assert_error(raw.post("/v1/graphs/nosuchgraph/layers/fc/apply", json={"inputs": []}), 404)
    assert_error(http.get("/layers/nosuchlayer"), 404, "layer_not_found")
    assert_error(http.put("/layers/~999999/weights", json={"weights": []}), 404)
    assert_error(http.get("/variables/fc/nosuch:0"), 404, "variable_not_found")
    assert_error(raw.get("/no/such/route"), 404)
    assert_error(raw.delete("/healthz"), 405)
    raw.close()


def test_weights_of_the_wrong_shape_count_or_dtype(server: ServerProcess, graph: tuple[httpx.Client, str]) -> None:
    http, name = graph
    before = _state(http, server, name)
    good = tensor("float32", [3, 2], [0] * 6)
    assert_error(http.put("/layers/fc/weights", json={"weights": [good]}), 409, "incompatible_weights")
    assert_error(http.put("/layers/fc/weights", json={"weights": [good, tensor("float32", [3], [0] * 3)]}), 409)
    assert_error(http.put("/layers/fc/weights", json={"weights": [good, tensor("int32", [2], [0, 0])]}), 422)
    assert_error(http.post("/layers/fc/apply", json={"inputs": [tensor("float32", [1, 4], [0] * 4)]}), 409)
    assert_error(http.post("/layers/fc/apply", json={"inputs": [tensor("int32", [1, 3], [0] * 3)]}), 422)
    assert_error(http.post("/layers/fc/build", json={"input_shape": [-1, 3]}), 422)
    assert _state(http, server, name) == before


def test_sizes_that_would_allocate_too_much_are_422(server: ServerProcess, graph: tuple[httpx.Client, str]) -> None:
    """A huge ``units`` or input width would make the variables, or the output, too big."""
    http, _ = graph
    assert http.post("/layers", json={"class": "Dense", "name": "wide", "config": {"units": 2**40}}).status_code == 201
    before = http.get("/layers/wide").json()
    assert_error(http.post("/layers/wide/build", json={"input_shape": [None, 1024]}), 422, "tensor_too_large")
    assert_error(http.post("/layers/wide/apply", json={"inputs": [tensor("float32", [1, 3], [1, 2, 3])]}), 422)
    after = http.get("/layers/wide").json()  # still unbuilt: nothing was created
    # TF's first apply takes the variable scope, even when it fails: that (and the version) changed
    assert after.pop("scope_name") == "wide" and before.pop("scope_name") is None
    assert after.pop("version") > before.pop("version") and after == before
    assert http.post("/layers", json={"class": "Dense", "name": "narrow", "config": {"units": 2**16}}).status_code == 201
    x = tensor("float32", [2**10, 1], [1.0] * 2**10)  # 2**26 outputs: over the 16Mi default limit
    assert_error(http.post("/layers/narrow/apply", json={"inputs": [x]}), 422, "tensor_too_large")


def _expected(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """TF's Dense on NaN and infinities: IEEE arithmetic, then relu keeps NaN (max(NaN, 0) is NaN)."""
    with np.errstate(invalid="ignore"):
        y = x @ kernel + bias
        return np.where(np.isnan(y), y, np.maximum(y, 0))


@pytest.mark.parametrize("binary", [True, False], ids=["frame", "json"])
def test_nan_and_inf_inputs_compute_as_tf(server: ServerProcess, binary: bool) -> None:
    conn = layerserve.connect(server.url, graph=f"hostile{next(_graphs)}", binary=binary)
    dense = conn.layers.Dense(2, activation="relu", activity_regularizer=layerserve.regularizers.l2(0.5))
    kernel, bias = np.array([[1, -1], [2, 0], [0, 1]], np.float32), np.array([0, 1], np.float32)
    x = np.array([[np.nan, 1, 1], [np.inf, 0, 0], [-np.inf, 1, 0], [1, 2, 3], [np.inf, 1, 0]], np.float32)
    dense.build((None, 3))
    dense.set_weights([kernel, bias])
    y = dense.apply(x)
    np.testing.assert_array_equal(y, _expected(x, kernel, bias))  # NaNs compare equal here
    (loss,) = dense.get_losses_for(x)
    assert np.isnan(loss) or np.isinf(loss)
    finite = dense.apply(np.array([[1, 2, 3]], np.float32))
    np.testing.assert_array_equal(finite, _expected(np.array([[1, 2, 3]], np.float32), kernel, bias))
    conn.close()


def test_nan_weights_round_trip_in_json(server: ServerProcess) -> None:
    http = httpx.Client(base_url=f"{server.url}/v1/graphs/hostile{next(_graphs)}")
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 1}}).status_code == 201
    weights = [tensor("float32", [2, 1], ["NaN", "-Infinity"]), tensor("float32", [1], ["Infinity"])]
    assert http.put("/layers/fc/weights", json={"weights": weights}).status_code == 409  # not built yet
    assert http.post("/layers/fc/build", json={"input_shape": [None, 2]}).status_code == 200
    assert http.put("/layers/fc/weights", json={"weights": weights}).status_code == 200
    got = http.get("/layers/fc/weights").json()["weights"]
    assert [w["data"] for w in got] == [["NaN", "-Infinity"], ["Infinity"]]
    frame = http.get("/layers/fc/weights", headers={"accept": FRAME_CONTENT_TYPE}).content
    assert frame.startswith(FRAME_MAGIC) and encode_frame({"names": ["fc/kernel:0", "fc/bias:0"]}, [
        np.array([[np.nan], [-np.inf]], np.float32), np.array([np.inf], np.float32)]) == frame
    http.close()


TRAVERSALS = ["..", "%2E%2E", "..%2F..%2Fescaped", "%2Fetc", "a%2F..%2F..%2Fescaped", "%00", "~"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_traversing_graph_or_layer_name_is_refused(server: ServerProcess, name: str) -> None:
    """Names that would climb out of the state directory never reach the store: 422 invalid_name
    (a name whose ``%2F`` the router sees as a path separator: no such route, 404)."""
    for path in (f"/v1/graphs/{name}/layers", f"/v1/graphs/hostile/layers/{name}/weights"):
        response = httpx.get(server.url + path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert_error(response, response.status_code,
                     "invalid_name" if response.status_code == 422 else response.json()["error"]["code"])
    created = httpx.post(server.url + "/v1/graphs/hostile/layers",
                         json={"class": "Dense", "name": name.replace("%2F", "/"), "config": {"units": 1}})
    assert_error(created, 422, "invalid_name")


def test_the_state_directory_holds_only_the_stores_layout(tmp_path: Path) -> None:
    """After layers with every kind of name were written, the sandbox around the state directory
    holds only it (and the log), and the state directory only ``graphs/<graph>/manifest.json``,
    ``graphs/<graph>/blobs/<name>``, the graph's history ``history/<graph>.jsonl``, the (empty)
    checkpoints folder and the lock: no name became a path of its own."""
    box = tmp_path / "box"
    box.mkdir()
    proc = ServerProcess(box / "state").start()
    try:
        http = httpx.Client(base_url=proc.url + "/v1/graphs/names-1")
        for k, name in enumerate(("a.b", "a-b_c", "x" * 128, "fc")):
            assert http.post("/layers", json={"class": "Dense", "name": name, "scope": f"s.{k}",
                                              "config": {"units": 1}}).status_code == 201
            assert http.post(f"/layers/{name}/build", json={"input_shape": [None, 2]}).status_code == 200
        http.close()
    finally:
        proc.stop()
    assert sorted(p.name for p in box.iterdir()) == sorted(["state", proc.log_path.name])
    for path in (box / "state").rglob("*"):
        parts = path.relative_to(box / "state").parts
        if path.is_dir():
            assert parts in (("graphs",), ("graphs", "names-1"), ("graphs", "names-1", "blobs"), ("history",),
                             ("checkpoints",)), parts
        elif parts[0] != "graphs":
            assert parts in ((".lock",), ("history", "names-1.jsonl")), parts
        else:
            assert parts[:2] == ("graphs", "names-1") and (
                parts[2:] == ("manifest.json",) or (parts[2] == "blobs" and len(parts) == 4)), parts
