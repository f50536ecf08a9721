"""Validating an uploaded model has a deadline (``--model-validation-timeout-s``): the checks,
shape inference and the first ONNX Runtime load run in a child process that is killed when the
deadline passes, so a model crafted to be slow to validate neither freezes the server (shape
inference holds the GIL) nor keeps a core busy after its request got its answer. A model whose
shape inference alone costs more than ``--max-model-inference-s`` of CPU is refused too: the
server repeats that inference in-process for every new input signature."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.probes import tree_cpu_seconds, watch_health
from tests.server import ServerProcess
from tests.test_hostile import assert_error

DEADLINE_S = 2.0
MAX_INFERENCE_S = 0.1


@pytest.fixture(scope="module")
def deadlined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Set through the environment, so that a server without the setting still starts (and fails the test).
    proc = ServerProcess(tmp_path_factory.mktemp("deadline") / "state",
                         env={"LAYERSERVE_MODEL_VALIDATION_TIMEOUT_S": str(DEADLINE_S),
                              "LAYERSERVE_MAX_MODEL_INFERENCE_S": str(MAX_INFERENCE_S)}).start()
    yield proc
    proc.stop()


def _slow_to_infer(inputs: int = 20_000, rank: int = 100_000) -> str:
    """One Concat node (well within the node and edge budgets) of ``inputs`` times the same
    rank-``rank`` input: shape inference merges inputs x rank dims (2e9: over ten seconds),
    ~0.5 MB as sent."""
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Concat", ["x"] * inputs, ["y"], axis=0)], "g",
                              [f("x", TensorProto.FLOAT, [1] * rank)], [f("y", TensorProto.FLOAT, [None] * rank)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return base64.b64encode(model.SerializeToString()).decode()


def _quick() -> str:
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "g", [f("x", TensorProto.FLOAT, ["n"])],
                              [f("y", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return base64.b64encode(model.SerializeToString()).decode()


def _create(server: ServerProcess, name: str, model: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/graphs/deadline/layers", timeout=300,
                      json={"class": "Layer", "name": name, "config": {"model": model, "variables": []}})


def test_a_model_slow_to_validate_is_stopped_at_the_deadline(deadlined: ServerProcess) -> None:
    assert deadlined.proc is not None
    model = _slow_to_infer()
    with watch_health(deadlined.url) as health:
        started = time.monotonic()
        response = _create(deadlined, "slow", model)
        elapsed = time.monotonic() - started
    error = assert_error(response, 422, "invalid_custom_layer")
    assert "--model-validation-timeout-s" in error["message"]
    assert error["details"]["field"] == "config.model"
    assert elapsed < DEADLINE_S + 4, elapsed  # a wide margin for a loaded machine; before: ~10 s or more
    health.assert_live()  # before: shape inference held the GIL, /healthz waited for it
    time.sleep(0.5)
    cpu = tree_cpu_seconds(deadlined.proc.pid)
    time.sleep(2.0)
    busy = tree_cpu_seconds(deadlined.proc.pid) - cpu
    assert busy < 0.3, f"the server and its children used {busy:.2f} s of CPU in 2 s after the answer"
    assert httpx.get(f"{deadlined.url}/v1/graphs/deadline/layers/slow").status_code == 404  # nothing created


def test_a_model_whose_shape_inference_is_costly_is_refused(deadlined: ServerProcess) -> None:
    model = _slow_to_infer(20_000, 5_000)  # 1e8 dims merged: about half a second of CPU
    with watch_health(deadlined.url) as health:
        response = _create(deadlined, "costly", model)
    error = assert_error(response, 422, "invalid_custom_layer")  # before: created, and inferred again per signature
    assert "--max-model-inference-s" in error["message"]
    health.assert_live()


def test_models_are_still_created_and_run_after_a_stopped_validation(deadlined: ServerProcess) -> None:
    assert _create(deadlined, "quick", _quick()).status_code == 201
    x = {"dtype": "float32", "shape": [2], "data": [1.0, -2.0]}
    response = httpx.post(f"{deadlined.url}/v1/graphs/deadline/layers/quick/apply", json={"inputs": [x]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [-1.0, 2.0]


def test_validation_errors_keep_their_status_and_field(deadlined: ServerProcess) -> None:
    error = assert_error(_create(deadlined, "broken", "bm90IG9ubng="), 422, "invalid_custom_layer")
    assert error["details"]["field"] == "config.model"
    assert "not an ONNX model" in error["message"]


def test_a_burst_of_slow_models_holds_two_validations_at_a_time(deadlined: ServerProcess) -> None:
    """Eight at once: two are validated (and stopped at the deadline), the others are told to
    retry after a short wait; the server stays live and ready, and its CPU comes back."""
    assert deadlined.proc is not None
    model, answers, failures = _slow_to_infer(), [], []

    def create(k: int) -> None:
        try:
            started = time.monotonic()
            response = _create(deadlined, f"burst{k}", model)
            answers.append((response.status_code, response.json()["error"]["code"], time.monotonic() - started))
        except Exception as exc:  # recorded: the test fails on it
            failures.append(repr(exc))

    threads = [threading.Thread(target=create, args=(k,)) for k in range(8)]
    with watch_health(deadlined.url) as health:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        ready = httpx.get(f"{deadlined.url}/readyz", timeout=5)
        for thread in threads:
            thread.join(60)
    assert not failures, failures
    assert ready.status_code == 200, ready.text
    health.assert_live()
    statuses = sorted((status, code) for status, code, _ in answers)
    assert len(statuses) == 8 and set(statuses) <= {(422, "invalid_custom_layer"), (503, "processing_timeout")}
    assert statuses.count((503, "processing_timeout")) >= 4, statuses  # two validated; the others waited 1 s for a slot
    assert max(elapsed for *_, elapsed in answers) < DEADLINE_S + 4, answers
    time.sleep(0.5)
    cpu = tree_cpu_seconds(deadlined.proc.pid)
    time.sleep(2.0)
    busy = tree_cpu_seconds(deadlined.proc.pid) - cpu
    assert busy < 0.3, f"the server and its children used {busy:.2f} s of CPU in 2 s after the answers"
