"""If-Match on every conditional write (PATCH, DELETE, build, updates:run), the graph-wide
updates:run (TF1's UPDATE_OPS), and a Dense layer's ONNX export run by ONNX Runtime itself."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from layerserve.protocol import FRAME_CONTENT_TYPE, decode_frame, encode_frame
from tests.server import ServerProcess
from tests.test_hostile import assert_error

_graphs = itertools.count(1)
FRAME = {"content-type": FRAME_CONTENT_TYPE, "accept": FRAME_CONTENT_TYPE}
X = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]], np.float32)  # column means 2, 4, 6


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v1/graphs/w{next(_graphs)}") as client:
        yield client


def _created(http: httpx.Client, cls: str, name: str, **config: object) -> int:
    response = http.post("/layers", json={"class": cls, "name": name, "config": config})
    assert response.status_code == 201, response.text
    return int(response.headers["x-layer-version"])


def _version(http: httpx.Client, name: str) -> int:
    response = http.get(f"/layers/{name}")
    assert response.status_code == 200, response.text
    return int(response.headers["x-layer-version"])


def _train(http: httpx.Client, name: str, x: np.ndarray) -> None:
    response = http.post(f"/layers/{name}/apply", content=encode_frame({"training": True}, [x]), headers=FRAME)
    assert response.status_code == 200, response.text


def _moving_mean(http: httpx.Client, name: str) -> np.ndarray:
    body = http.get(f"/layers/{name}/weights").json()
    w = body["weights"][body["names"].index(f"{name}/moving_mean:0")]
    return np.asarray(w["data"], np.float32)


def _bn_with_update(http: httpx.Client, name: str) -> int:
    _created(http, "BatchNormalization", name, momentum=0.5)
    _train(http, name, X)
    assert len(http.get(f"/layers/{name}/updates").json()["updates"]) == 2  # moving mean and variance
    return _version(http, name)


Write = Callable[[httpx.Client, str, dict[str, str]], httpx.Response]
WRITES: dict[str, Write] = {
    "patch": lambda http, name, h: http.patch(f"/layers/{name}", json={"trainable": False}, headers=h),
    "delete": lambda http, name, h: http.delete(f"/layers/{name}", headers=h),
    "build": lambda http, name, h: http.post(f"/layers/{name}/build", json={"input_shape": [None, 3]}, headers=h),
    "updates:run": lambda http, name, h: http.post(f"/layers/{name}/updates:run", json={"inputs": None}, headers=h),
}


def _state(http: httpx.Client, name: str) -> tuple[object, ...]:
    """What a refused write must leave as it was."""
    view = http.get(f"/layers/{name}").json()
    updates = http.get(f"/layers/{name}/updates").json()["updates"]
    return view["trainable"], view["built"], view["version"], len(updates)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_stale_if_match_is_409_and_changes_nothing(http: httpx.Client, write: str) -> None:
    name = "bn"
    if write == "build":
        _created(http, "BatchNormalization", name, momentum=0.5)
    else:
        _bn_with_update(http, name)
    current = _version(http, name)
    before = _state(http, name)
    for stale in (current - 1, current + 1):
        error = assert_error(WRITES[write](http, name, {"if-match": f'"{stale}"'}), 409, "version_conflict")
        assert error["details"]["version"] == current
    assert _state(http, name) == before


@pytest.mark.parametrize("write", sorted(WRITES))
def test_the_current_if_match_writes_and_moves_the_version(http: httpx.Client, write: str) -> None:
    name = "bn"
    if write == "build":
        _created(http, "BatchNormalization", name, momentum=0.5)
    else:
        _bn_with_update(http, name)
    current = _version(http, name)
    response = WRITES[write](http, name, {"if-match": f'W/"{current}"'})
    if write == "delete":
        assert response.status_code == 204, response.text
        assert_error(http.get(f"/layers/{name}"), 404, "layer_not_found")
        return
    assert response.status_code == 200, response.text
    assert int(response.headers["x-layer-version"]) > current
    trainable, built, _, pending = _state(http, name)
    # a frozen layer shows no updates (TF's Layer.updates is empty while trainable is False)
    assert (trainable, built, pending) == {"patch": (False, True, 0), "build": (True, True, 0),
                                           "updates:run": (True, True, 0)}[write]


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("value", ["soon", "-1", '"1.5"', ""])
def test_a_malformed_if_match_is_422(http: httpx.Client, write: str, value: str) -> None:
    _bn_with_update(http, "bn")
    before = _state(http, "bn")
    assert_error(WRITES[write](http, "bn", {"if-match": value}), 422, "invalid_if_match")
    assert _state(http, "bn") == before


def test_graph_wide_updates_run_runs_every_layers_updates(http: httpx.Client) -> None:
    """``POST /v1/graphs/{g}/updates:run``: every layer's visible updates (TF1's UPDATE_OPS),
    or only those of the inputs given."""
    for name in ("bn_a", "bn_b"):
        _bn_with_update(http, name)
    other = X * 3  # column means 6, 12, 18
    _train(http, "bn_a", other)
    graph_run = http.post("/updates:run", json={"inputs": [{"dtype": "float32", "shape": [2, 3],
                                                             "data": X.ravel().tolist()}]})
    assert graph_run.status_code == 200, graph_run.text
    assert sorted(graph_run.json()["updated_variables"]) == sorted(
        f"{n}/{v}:0" for n in ("bn_a", "bn_b") for v in ("moving_mean", "moving_variance"))
    np.testing.assert_allclose(_moving_mean(http, "bn_b"), 0.5 * X.mean(axis=0), rtol=1e-6)
    assert len(http.get("/layers/bn_a/updates").json()["updates"]) == 2  # the other input's stay
    everything = http.post("/updates:run", json={"inputs": None})
    assert everything.status_code == 200, everything.text
    assert sorted(everything.json()["updated_variables"]) == ["bn_a/moving_mean:0", "bn_a/moving_variance:0"]
    expected = 0.5 * (0.5 * X.mean(axis=0)) + 0.5 * other.mean(axis=0)
    np.testing.assert_allclose(_moving_mean(http, "bn_a"), expected, rtol=1e-6)
    for name in ("bn_a", "bn_b"):
        assert http.get(f"/layers/{name}/updates").json()["updates"] == []
    again = http.post("/updates:run", json={"inputs": None})
    assert again.status_code == 200 and again.json()["updated_variables"] == []


def test_dense_onnx_export_runs_in_onnx_runtime(http: httpx.Client) -> None:
    _created(http, "Dense", "fc", units=4, activation="tanh")
    assert_error(http.get("/layers/fc/onnx"), 409, "not_built")
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    served = http.post("/layers/fc/apply", content=encode_frame({}, [x]), headers=FRAME)
    assert served.status_code == 200, served.text
    y = decode_frame(served.content)[1][0]
    exported = http.get("/layers/fc/onnx")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/x-onnx"
    session = ort.InferenceSession(exported.content, providers=["CPUExecutionProvider"])
    [model_input] = session.get_inputs()
    assert model_input.shape[1] == 3
    (got,) = session.run(None, {model_input.name: x})
    np.testing.assert_allclose(got, y, rtol=1e-6, atol=1e-7)
    kernel, bias = (np.asarray(w["data"], np.float32).reshape(w["shape"])
                    for w in http.get("/layers/fc/weights").json()["weights"])
    np.testing.assert_allclose(got, np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
