"""Bad requests get the contract's status and error code, TF's exception type, and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

import layerserve
from tests.server import ServerProcess


def _tensor(array: np.ndarray) -> dict[str, Any]:
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.ravel().tolist()}


@pytest.fixture
def built(conn: layerserve.Connection) -> layerserve.Layer:
    layer = conn.layers.Dense(2, name="fc")
    layer(np.ones((3, 4), np.float32))
    return layer


def _snapshot(layer: layerserve.Layer) -> tuple[Any, ...]:
    return (layer._describe(), [w.tolist() for w in layer.get_weights()])


def _post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=10)


@pytest.mark.parametrize("shape, dtype, status, code, message", [
    ((3,), "float32", 409, "incompatible_input", "expected min_ndim=2, found ndim=1. Full shape received: (3,)"),
    ((3, 5), "float32", 409, "incompatible_input",
     "expected axis -1 of input shape to have value 4, but received input with shape (3, 5)"),
    ((3, 4), "int32", 422, "unsupported_dtype", "A Dense layer can only be built with a floating-point dtype"),
])
def test_bad_inputs(server: ServerProcess, conn: layerserve.Connection, built: layerserve.Layer, shape: tuple[int, ...],
                    dtype: str, status: int, code: str, message: str) -> None:
    before = _snapshot(built)
    response = _post(server, f"/v1/graphs/{conn.graph}/layers/{built.id}/apply",
                     {"inputs": [_tensor(np.ones(shape, dtype))]})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"]
    with pytest.raises(TypeError if code == "unsupported_dtype" else ValueError, match=r"Input 0|Dense layer"):
        built(np.ones(shape, dtype))
    assert _snapshot(built) == before


@pytest.mark.parametrize("body, status, code, exception, next_name", [
    # TF names a layer before the class checks its arguments: those failures use up dense_1
    ({"class": "Dense", "config": {"units": 2, "activation": "bogus"}}, 422, "invalid_activation", ValueError,
     "dense_2"),
    ({"class": "Dense", "config": {"units": 2, "foo": 1}}, 422, "unknown_argument", TypeError, "dense_1"),
    ({"class": "Dense", "name": "a/b", "config": {"units": 2}}, 422, "invalid_name", ValueError, "dense_1"),
    ({"class": "Dense", "name": "x" * 10_000, "config": {"units": 2}}, 422, "invalid_name", ValueError, "dense_1"),
    ({"class": "Dense", "config": {"units": -1}}, 422, "invalid_argument", ValueError, "dense_2"),
    ({"class": "Dense", "config": {}}, 422, "missing_argument", TypeError, "dense_1"),
    ({"class": "Nope", "config": {}}, 422, "unknown_class", ValueError, "dense_1"),
    ({"class": "Dense", "config": {"units": 2}, "extra": 1}, 422, "invalid_request", ValueError, "dense_1"),
])
def test_bad_creates_change_nothing(server: ServerProcess, conn: layerserve.Connection, built: layerserve.Layer,
                                    body: dict[str, Any], status: int, code: str, exception: type,
                                    next_name: str) -> None:
    before = [d["id"] for d in httpx.get(f"{server.url}/v1/graphs/{conn.graph}/layers").json()["layers"]]
    response = _post(server, f"/v1/graphs/{conn.graph}/layers", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"]["exception"] == exception.__name__
    after = [d["id"] for d in httpx.get(f"{server.url}/v1/graphs/{conn.graph}/layers").json()["layers"]]
    assert after == before
    assert conn.layers.Dense(2).name == next_name


def test_client_raises_tf_types(conn: layerserve.Connection) -> None:
    with pytest.raises(TypeError, match=r"\('Keyword argument not understood:', 'foo'\)"):
        conn.layers.Dense(2, foo=1)
    with pytest.raises(ValueError):
        conn.layers.Dense(-1)


def test_missing_layer_and_graph(server: ServerProcess, conn: layerserve.Connection) -> None:
    response = httpx.get(f"{server.url}/v1/graphs/default/layers/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "layer_not_found"
    response = httpx.get(f"{server.url}/v1/graphs/never-made/layers")
    assert response.status_code == 404 and response.json()["error"]["code"] == "graph_not_found"
    with pytest.raises(LookupError):
        layerserve.layers.Layer._from_description(conn, {"id": "~999", "name": "x", "class": "Dense"}).get_weights()


def test_wrong_weights_change_nothing(conn: layerserve.Connection, built: layerserve.Layer) -> None:
    before = _snapshot(built)
    with pytest.raises(ValueError, match="was expecting 2 weights"):
        built.set_weights([np.zeros((4, 2), np.float32)])
    with pytest.raises(ValueError, match=r"Layer weight shape \(4, 2\) not compatible with provided weight shape"):
        built.set_weights([np.zeros((4, 3), np.float32), np.zeros(2, np.float32)])
    assert _snapshot(built) == before


def test_ambiguous_name_lists_candidates(server: ServerProcess, conn: layerserve.Connection) -> None:
    a, b = conn.layers.Dense(2, name="up"), conn.layers.Dense(2, name="up")
    response = httpx.get(f"{server.url}/v1/graphs/{conn.graph}/layers/up")
    assert response.status_code == 409
    assert sorted(response.json()["error"]["details"]["candidates"]) == sorted([a.id, b.id])


def test_scope_name_before_first_apply(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2)
    with pytest.raises(ValueError, match='layer "dense_1" has not been used yet'):
        _ = layer.scope_name
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()


def test_functional_reuse_errors(conn: layerserve.Connection) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="Variable nope/kernel does not exist"):
        conn.layers.dense(x, 4, name="nope", reuse=True)
    conn.layers.dense(x, 4, name="fc")
    with pytest.raises(ValueError, match=r"Trying to share variable fc/kernel, but specified shape \(3, 5\) and "
                                         r"found shape \(3, 4\)."):
        conn.layers.dense(x, 5, name="fc", reuse=True)
    assert [v.name for v in conn.global_variables()] == ["fc/kernel:0", "fc/bias:0"]
