"""Property-based and schema-driven fuzzing: no request makes the server answer 5xx, every
error has the contract's body, and a rejected request leaves the state as it was."""

from __future__ import annotations

import itertools
import json
import os
import struct
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from layerserve.protocol import FRAME_CONTENT_TYPE, FRAME_MAGIC
from tests.server import ServerProcess

__all__ = ["PROPERTIES", "Target", "fuzz_operation"]

_graphs = itertools.count(1)
# benchmarks/fuzz.py runs the same properties longer through LAYERSERVE_FUZZ_EXAMPLES.
FUZZ = settings(max_examples=int(os.environ.get("LAYERSERVE_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize=True, database=None, suppress_health_check=list(HealthCheck))

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
dims = st.integers(min_value=-3, max_value=6) | st.sampled_from([0, 2**31, 2**63, 10**30])
tensors = st.fixed_dictionaries({
    "dtype": st.sampled_from(["float32", "float64", "float16", "int32", "bool", "complex64", "str", ""]),
    "shape": st.lists(dims, max_size=4) | json_values,
    "data": st.lists(st.floats(width=32) .map(lambda f: f if f == f and abs(f) != float("inf") else "NaN")
                     | st.integers(-5, 5) | st.sampled_from(["Infinity", "-Infinity", "x", None]), max_size=12),
}) | json_values
ROUTES = [("POST", "/layers/fc/apply"), ("PUT", "/layers/fc/weights"), ("POST", "/layers"),
          ("POST", "/layers/fc/build"), ("PATCH", "/layers/fc"), ("POST", "/layers/fc/losses:for"),
          ("POST", "/layers/fc/updates:run"), ("POST", "/layers/fc/compute_output_shape"),
          ("POST", "/updates:run")]


class Target:
    """A graph with one built Dense layer ``fc``, and what a rejected request must not change."""

    def __init__(self, server: ServerProcess) -> None:
        self.name = f"fuzz{next(_graphs)}"
        self.http = httpx.Client(base_url=f"{server.url}/v1/graphs/{self.name}", timeout=60.0)
        assert self.http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).is_success
        assert self.http.post("/layers/fc/build", json={"input_shape": [None, 3]}).is_success

    def state(self) -> tuple[Any, ...]:
        return (self.http.get("/layers").json(), self.http.get("/layers/fc/weights").json(),
                self.http.get("/layers/fc/losses").json())

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        before = self.state()
        response = self.http.request(method, path, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text[:500])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message", "details"}, error
            assert self.state() == before, (method, path, response.text[:300])
        return response


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> Target:
    return Target(server)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=json_values)
def test_any_json_body(target: Target, route: tuple[str, str], body: Any) -> None:
    target.send(*route, json=body)


@FUZZ
@given(route=st.sampled_from(ROUTES[:2] + ROUTES[5:6]), items=st.lists(tensors, max_size=3),
       training=st.none() | st.booleans() | json_scalars)
def test_any_tensor_list(target: Target, route: tuple[str, str], items: list[Any], training: Any) -> None:
    key = "weights" if route[1].endswith("weights") else "inputs"
    body: dict[str, Any] = {key: items}
    if route[1].endswith("apply"):
        body["training"] = training
    target.send(*route, json=body)


@FUZZ
@given(route=st.sampled_from(ROUTES[:2]), header=json_values, specs=st.lists(json_values, max_size=3),
       payload=st.binary(max_size=64), raw=st.none() | st.binary(max_size=64))
def test_any_frame(target: Target, route: tuple[str, str], header: Any, specs: list[Any], payload: bytes,
                   raw: bytes | None) -> None:
    if raw is None:
        meta = {**header, "tensors": specs} if isinstance(header, dict) else header
        head = json.dumps(meta).encode()
        raw = struct.pack("<4sI", FRAME_MAGIC, len(head)) + head + payload
    target.send(*route, content=raw, headers={"content-type": FRAME_CONTENT_TYPE})


@FUZZ
@given(layer=st.text(max_size=40), graph=st.text(min_size=1, max_size=40), suffix=st.sampled_from(
    ["", "/apply", "/weights", "/variables", "/losses", "/updates", "/onnx"]))
def test_any_names_in_paths(server: ServerProcess, layer: str, graph: str, suffix: str) -> None:
    quoted = ["".join(f"%{b:02X}" for b in part.encode()) for part in (graph, layer)]
    response = httpx.get(f"{server.url}/v1/graphs/{quoted[0]}/layers/{quoted[1]}{suffix}")
    assert response.status_code < 500, (graph, layer, suffix, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_openapi_operations_never_answer_5xx(server: ServerProcess) -> None:
    """Schemathesis generates valid and invalid requests for every operation /openapi.json
    describes (the request bodies included), and sends them to the real server."""
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    sent: list[int] = []
    for operation in operations:
        # Path parameters are free strings: only a body can be made invalid.
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if operation.body else 1]:
            fuzz_operation(operation, mode, sent)
    assert len(sent) >= 8 * len(operations) and max(sent) < 500


def fuzz_operation(operation: Any, mode: GenerationMode, sent: list[int], examples: int = 12) -> None:
    """Send ``examples`` generated requests for ``operation``; record their statuses in ``sent``."""
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call()
        sent.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                            response.text[:500])
        if response.status_code >= 400:
            error = response.json()["error"]
            if case.path.startswith("/v2"):  # the Open Inference Protocol's error body
                assert isinstance(error, str), response.text[:300]
            else:
                assert set(error) == {"code", "message", "details"}, response.text[:300]

    check()


PROPERTIES = (test_any_json_body, test_any_tensor_list, test_any_frame)
