"""Numbers on the wire, read strictly: headers, OIP v2 bodies and JSON tensors get a 4xx, never a
500, and non-finite values travel the same way on both APIs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.test_hostile import assert_error, tensor

_graphs = itertools.count(1)
# str.isdigit says yes, int() says no (or too long); headers travel as latin-1
ODD_DIGITS = ["\u00b2", "1\u00b3", "\u00b9", "9" * 5000]


@pytest.fixture
def dense(server: ServerProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A graph with one built Dense ``fc`` (2 -> 1, kernel of ones, no bias)."""
    name = f"strict{next(_graphs)}"
    http = httpx.Client(base_url=server.url, timeout=30.0)
    base = f"/v1/graphs/{name}/layers"
    body = {"class": "Dense", "name": "fc", "config": {"units": 1, "use_bias": False, "kernel_initializer": "ones"}}
    assert http.post(base, json=body).status_code == 201
    assert http.post(f"{base}/fc/build", json={"input_shape": [None, 2]}).status_code == 200
    yield http, name
    http.close()


def _oip_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


@pytest.mark.parametrize("value", ODD_DIGITS)
def test_if_match_with_odd_digits_is_422(dense: tuple[httpx.Client, str], value: str) -> None:
    http, name = dense
    headers = {"If-Match": f'"{value}"'.encode("latin-1")}
    response = http.patch(f"/v1/graphs/{name}/layers/fc", json={"trainable": False}, headers=headers)  # type: ignore[arg-type]
    assert_error(response, 422, "invalid_if_match")  # before: 500 ValueError


def _infer(http: httpx.Client, name: str, body: dict[str, Any], headers: dict[str, Any] | None = None,
           tail: bytes = b"") -> httpx.Response:
    return http.post(f"/v2/models/{name}.fc/infer", content=json.dumps(body).encode() + tail, headers=headers)


def _input(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input_0", "shape": [1, 2], "datatype": "FP32", **fields}]}


@pytest.mark.parametrize("value", ODD_DIGITS)
def test_header_length_with_odd_digits_is_400(dense: tuple[httpx.Client, str], value: str) -> None:
    http, name = dense
    response = _infer(http, name, _input(data=[1, 2]), {"Inference-Header-Content-Length": value.encode("latin-1")})
    _oip_error(response, 400)  # before: 500


@pytest.mark.parametrize("shape", [[10**30, 1], [2**62, 2**62, 4], [2**40, 2**40]], ids=["huge", "wraps", "overflows"])
def test_shape_whose_element_count_overflows_is_400(dense: tuple[httpx.Client, str], shape: list[int]) -> None:
    http, name = dense
    body = {"inputs": [{"name": "input_0", "shape": shape, "datatype": "FP32", "data": [1, 2]}]}
    _oip_error(_infer(http, name, body), 400)


def test_float_binary_data_size_is_400(dense: tuple[httpx.Client, str]) -> None:
    http, name = dense
    head = json.dumps(_input(parameters={"binary_data_size": 8.0})).encode()
    response = http.post(f"/v2/models/{name}.fc/infer", content=head + b"\0" * 8,
                         headers={"Inference-Header-Content-Length": str(len(head))})
    _oip_error(response, 400)  # before: 500 (a float slice)


@pytest.mark.parametrize("output", ["output_\u00b2", "output_01", "output_", "output_9999999"])
def test_odd_output_names_are_400(dense: tuple[httpx.Client, str], output: str) -> None:
    http, name = dense
    body = {**_input(data=[1, 2]), "outputs": [{"name": output}]}
    _oip_error(_infer(http, name, body), 400)


def test_oip_writes_non_finite_outputs_as_the_native_api_does(dense: tuple[httpx.Client, str]) -> None:
    http, name = dense
    body = {"inputs": [{"name": "input_0", "shape": [3, 2], "datatype": "FP32",
                        "data": ["NaN", 1, "Infinity", 1, "-Infinity", 1]}]}
    response = _infer(http, name, body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity"]  # before: null, null, null
    native = http.post(f"/v1/graphs/{name}/layers/fc/apply",
                       json={"inputs": [tensor("float32", [3, 2], ["NaN", 1, "Infinity", 1, "-Infinity", 1])]})
    assert native.json()["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity"]


BAD_DATA = [
    pytest.param(["1", 2], id="number-as-string"),
    pytest.param(["nan", 2], id="lower-case-nan"),
    pytest.param(["inf", 2], id="inf"),
    pytest.param([1e39, 2], id="beyond-float32"),
    pytest.param([None, 2], id="null"),
    pytest.param([{"a": 1}, 2], id="object"),
]


@pytest.mark.parametrize("data", BAD_DATA)
def test_json_tensor_numbers_are_strict(dense: tuple[httpx.Client, str], data: list[Any]) -> None:
    http, name = dense
    response = http.post(f"/v1/graphs/{name}/layers/fc/apply", json={"inputs": [tensor("float32", [1, 2], data)]})
    assert_error(response, 422, "invalid_tensor")
    _oip_error(_infer(http, name, _input(data=data)), 400)


def test_integer_tensors_refuse_values_they_cannot_hold(dense: tuple[httpx.Client, str]) -> None:
    http, name = dense
    weights = http.put(f"/v1/graphs/{name}/layers/fc/weights", json={"weights": [tensor("int8", [2, 1], [300, 1])]})
    assert_error(weights, 422, "invalid_tensor")


def test_a_layer_named_dot_is_refused(dense: tuple[httpx.Client, str]) -> None:
    http, name = dense
    response = http.post(f"/v1/graphs/{name}/layers", json={"class": "Dense", "name": ".", "config": {"units": 1}})
    assert_error(response, 422, "invalid_name")  # before: 201, then unreachable as /layers/.
