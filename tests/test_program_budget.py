"""Registered programs (TF1 graph mode) are bounded like uploaded custom-layer models: nodes
(``--max-program-nodes``), node inputs and outputs (``--max-program-edges``) and nesting once
functions are inlined, counted before anything else walks the program; then the CPU time of ONNX
shape inference on it (``--max-model-inference-s``), measured in a child process stopped once it
has spent that much CPU, or at ``--model-validation-timeout-s``; and composing it for a new feed
signature infers shapes in such a child too. Before, composing ran that inference in the server's
process holding the GIL: one registered ``Concat`` froze ``/healthz`` for as long as its first run
composed it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.probes import tree_cpu_seconds, watch_health
from tests.server import ServerProcess
from tests.test_hostile import assert_error

GRAPH = "hostile_programs"
DEADLINE_S = 4.0
MAX_INFERENCE_S = 0.1
RUN_TIMEOUT_S = 20.0  # only reached on a server that accepts the hostile programs


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Set through the environment, so that a server without these settings still starts (and fails the tests).
    proc = ServerProcess(tmp_path_factory.mktemp("programs") / "state",
                         env={"LAYERSERVE_MAX_PROGRAM_NODES": "20000", "LAYERSERVE_MAX_PROGRAM_EDGES": "100000",
                              "LAYERSERVE_MODEL_VALIDATION_TIMEOUT_S": str(DEADLINE_S),
                              "LAYERSERVE_MAX_MODEL_INFERENCE_S": str(MAX_INFERENCE_S)}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def deadlined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A CPU limit for inference above the deadline: the deadline stops the validation."""
    proc = ServerProcess(tmp_path_factory.mktemp("programs_deadline") / "state",
                         env={"LAYERSERVE_MODEL_VALIDATION_TIMEOUT_S": str(DEADLINE_S),
                              "LAYERSERVE_MAX_MODEL_INFERENCE_S": "60"}).start()
    yield proc
    proc.stop()


def _program(nodes: list[object], initializers: list[object] | None = None) -> bytes:
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "p", [f("x:0", TensorProto.FLOAT, [1])], [f("y:0", TensorProto.FLOAT, None)],
                              initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _wide_concat(inputs: int, rank: int) -> bytes:
    """One ``Concat`` node of ``inputs`` times a one-element constant of rank ``rank``: inference
    merges inputs x rank dims (200,000 x 10,000: seconds; 20,000 x 100,000: over ten seconds)."""
    from onnx import TensorProto, helper

    constant = helper.make_tensor("c", TensorProto.FLOAT, [1] * rank, [1.0])
    return _program([helper.make_node("Concat", ["c"] * inputs, ["y:0"], axis=0)], [constant])


def _growing_rank(nodes: int) -> bytes:
    """A chain of ``Unsqueeze`` nodes, each adding an axis, on an input of undeclared shape: at
    registration the ranks are unknown (inference is cheap); fed, the k-th node's output has the
    feed's rank + k dims, and inference costs nodes^2 / 2 dims (10,000 nodes: tens of seconds)."""
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [0])
    chain = [helper.make_node("Unsqueeze", ["x:0" if k == 0 else f"u{k - 1}", "axes"],
                              ["y:0" if k == nodes - 1 else f"u{k}"]) for k in range(nodes)]
    f = helper.make_tensor_value_info
    graph = helper.make_graph(chain, "p", [f("x:0", TensorProto.FLOAT, None)], [f("y:0", TensorProto.FLOAT, None)],
                              [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _register(server: ServerProcess, data: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/graphs/{GRAPH}/programs", timeout=60,
                      json={"model": base64.b64encode(data).decode()})


def _run(server: ServerProcess, program: str) -> httpx.Response:
    body = {"feeds": ["x:0"], "fetches": ["y:0"], "values": [{"dtype": "float32", "shape": [1], "data": [2.0]}]}
    return httpx.post(f"{server.url}/v1/graphs/{GRAPH}/programs/{program}:run", json=body, timeout=RUN_TIMEOUT_S)


def _register_and_run(server: ServerProcess, data: bytes) -> httpx.Response:
    """Registers the program and, where the server accepts it, runs it once (composing it: the
    shape inference the bounds are about)."""
    response = _register(server, data)
    if response.status_code == 201:
        with contextlib.suppress(httpx.TimeoutException):  # busy composing it for longer than the timeout
            _run(server, response.json()["id"])
    return response


def _assert_not_registered(server: ServerProcess, data: bytes) -> None:
    found = httpx.get(f"{server.url}/v1/graphs/{GRAPH}/programs/{hashlib.sha256(data).hexdigest()}")
    assert found.status_code == 404, found.text[:300]


def _assert_cpu_returns(server: ServerProcess) -> None:
    assert server.proc is not None
    time.sleep(0.5)
    cpu = tree_cpu_seconds(server.proc.pid)
    time.sleep(2.0)
    busy = tree_cpu_seconds(server.proc.pid) - cpu
    assert busy < 0.3, f"the server and its children used {busy:.2f} s of CPU in 2 s after the answer"


def test_a_program_with_too_many_node_inputs_is_refused_at_registration(bounded: ServerProcess) -> None:
    data = _wide_concat(200_000, 10_000)  # one node: within --max-program-nodes; ~0.6 MB
    with watch_health(bounded.url) as health:
        response = _register_and_run(bounded, data)
    health.assert_live()  # before: /healthz waited seconds for the run's shape inference
    error = assert_error(response, 422, "program_too_large")  # before: 201
    assert "--max-program-edges" in error["message"] and "100000" in error["message"], error
    _assert_not_registered(bounded, data)


def test_a_program_slow_to_infer_within_its_budget_is_stopped_at_its_cpu_limit(bounded: ServerProcess) -> None:
    data = _wide_concat(20_000, 100_000)  # 20,001 edges: within every budget; 2e9 dims merged
    with watch_health(bounded.url) as health:
        started = time.monotonic()
        response = _register_and_run(bounded, data)
        elapsed = time.monotonic() - started
    health.assert_live()  # before: /healthz waited for the run's shape inference (over ten seconds)
    error = assert_error(response, 422, "program_too_large")  # before: 201
    assert "--max-model-inference-s" in error["message"] and "stopped" in error["message"], error
    assert elapsed < DEADLINE_S + 4, elapsed  # a wide margin for a loaded machine
    _assert_cpu_returns(bounded)  # the validating child was killed at its CPU limit
    _assert_not_registered(bounded, data)


def test_a_program_slow_to_infer_is_stopped_at_the_deadline(deadlined: ServerProcess) -> None:
    data = _wide_concat(20_000, 100_000)
    with watch_health(deadlined.url) as health:
        started = time.monotonic()
        response = _register_and_run(deadlined, data)
        elapsed = time.monotonic() - started
    health.assert_live()
    error = assert_error(response, 422, "program_too_large")  # before: 201
    assert "--model-validation-timeout-s" in error["message"], error
    assert elapsed < DEADLINE_S + 4, elapsed
    _assert_cpu_returns(deadlined)  # the validating child was killed at the deadline
    _assert_not_registered(deadlined, data)


def test_a_program_whose_shape_inference_is_costly_is_refused(bounded: ServerProcess) -> None:
    data = _wide_concat(60_000, 5_000)  # 3e8 dims merged: several times --max-model-inference-s
    # (refused by the measurement itself, or by the child's CPU timer a little past the limit)
    with watch_health(bounded.url) as health:
        response = _register_and_run(bounded, data)
    error = assert_error(response, 422, "program_too_large")  # before: 201, inferred again per feed signature
    assert "--max-model-inference-s" in error["message"], error
    health.assert_live()
    _assert_not_registered(bounded, data)


def test_the_program_node_budget_counts_nodes_in_subgraphs(bounded: ServerProcess) -> None:
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    chain = [helper.make_node("Neg", ["x:0" if k == 0 else f"t{k - 1}"], [f"t{k}"]) for k in range(10_001)]
    body = helper.make_graph(chain, "branch", [], [f("t10000", TensorProto.FLOAT, [1])])  # 10,001 nodes per branch
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    data = _program([helper.make_node("If", ["cond"], ["y:0"], then_branch=body, else_branch=body)], [cond])
    error = assert_error(_register(bounded, data), 422, "program_too_large")  # before: one node, accepted
    assert "--max-program-nodes" in error["message"] and "20000" in error["message"], error
    _assert_not_registered(bounded, data)


def _program_neg() -> bytes:
    from onnx import helper

    return _program([helper.make_node("Neg", ["x:0"], ["y:0"])])


def test_programs_within_their_budget_still_register_and_run(bounded: ServerProcess) -> None:
    data = _program_neg()
    response = _register(bounded, data)
    assert response.status_code == 201, response.text
    ran = _run(bounded, response.json()["id"])
    assert ran.status_code == 200, ran.text
    assert ran.json()["outputs"][0]["data"] == [-2.0]



def test_a_program_slow_to_infer_for_its_feeds_is_stopped_when_composed(bounded: ServerProcess) -> None:
    data = _growing_rank(10_000)
    registered = _register(bounded, data)
    assert registered.status_code == 201, registered.text  # its cost depends on the feed: unknown here
    with watch_health(bounded.url) as health:
        try:
            ran: httpx.Response | None = _run(bounded, registered.json()["id"])
        except httpx.TimeoutException:
            ran = None
    health.assert_live()  # before: /healthz waited for composing's shape inference (tens of seconds)
    assert ran is not None, f"no answer within {RUN_TIMEOUT_S} s"
    error = assert_error(ran, 422, "program_too_large")
    assert "composing the program" in error["message"] and "--max-model-inference-s" in error["message"], error
    _assert_cpu_returns(bounded)
    again = _run(bounded, _register(bounded, _program_neg()).json()["id"])
    assert again.status_code == 200, again.text  # runs of other programs still compose
