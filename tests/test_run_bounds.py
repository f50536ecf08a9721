"""Work per apply is bounded: built-in layers by a cost model (``--max-apply-cost``), every output
by ``--max-tensor-elements``, and a run past the request timeout is terminated: its core and its
thread come back, and SIGTERM does not wait for it. Uploaded models are loaded without ONNX
Runtime folding their constants."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.probes import peak_rss_bytes, watch_health
from tests.server import ServerProcess
from tests.test_hostile import assert_error, tensor

TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("runs") / "state", "--max-apply-cost", str(10**8),
                         "--request-timeout-s", str(TIMEOUT_S), "--max-tensor-elements", str(2**20)).start()
    yield proc
    proc.stop()


def _model(nodes: list[object], initializers: list[object] = (), body_inputs: int = 1) -> str:  # type: ignore[assignment]
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [f("inp", TensorProto.FLOAT, ["n"])], [f("y", TensorProto.FLOAT, ["m"])],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return base64.b64encode(model.SerializeToString()).decode()


def _endless_loop() -> str:
    """y = inp, after as many Loop iterations as inp[0] says (1e12: hours)."""
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["v"], ["v_out"])], "body",
        [f("i", TensorProto.INT64, []), f("c", TensorProto.BOOL, []), f("v", TensorProto.FLOAT, ["n"])],
        [f("c_out", TensorProto.BOOL, []), f("v_out", TensorProto.FLOAT, ["n"])])
    nodes = [helper.make_node("ReduceMax", ["inp"], ["top"], keepdims=0),
             helper.make_node("Cast", ["top"], ["trips"], to=TensorProto.INT64),
             helper.make_node("Loop", ["trips", "", "inp"], ["y"], body=body)]
    return _model(nodes)


def _sized_by_input() -> str:
    """y = zeros of as many elements as inp[0] says."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["inp"], ["shape"], to=TensorProto.INT64),
             helper.make_node("ConstantOfShape", ["shape"], ["y"])]
    return _model(nodes)


def _folded_constant() -> str:
    """y = inp * sum(ones(2**27)): 512 MiB if ONNX Runtime folds the constant at load."""
    from onnx import TensorProto, helper, numpy_helper

    size = numpy_helper.from_array(np.array([2**27], np.int64), "size")
    nodes = [helper.make_node("ConstantOfShape", ["size"], ["ones"],
                              value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["ones"], ["total"], keepdims=0),
             helper.make_node("Mul", ["inp", "total"], ["y"])]
    return _model(nodes, [size])


def _create(server: ServerProcess, graph: str, name: str, model: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/graphs/{graph}/layers", timeout=60,
                      json={"class": "Layer", "name": name, "config": {"model": model, "variables": []}})


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def test_pooling_over_the_cost_limit_is_422_at_once(bounded: ServerProcess) -> None:
    base = f"{bounded.url}/v1/graphs/cost/layers"
    body = {"class": "MaxPooling2D", "name": "pool", "config": {"pool_size": 64, "strides": 1}}
    assert httpx.post(base, json=body).status_code == 201
    x = tensor("float32", [1, 256, 256, 1], [0.0] * (256 * 256))  # (193 x 193) outputs x 4096 reads: 1.5e8
    with watch_health(bounded.url) as health:
        response = httpx.post(f"{base}/pool/apply", json={"inputs": [x]}, timeout=60)
    assert_error(response, 422, "apply_too_costly")  # before: it ran, keeping a core busy
    health.assert_live()
    small = tensor("float32", [1, 70, 70, 1], [0.0] * 4900)
    assert httpx.post(f"{base}/pool/apply", json={"inputs": [small]}).status_code == 200


def test_custom_output_over_the_tensor_limit_is_422(bounded: ServerProcess) -> None:
    assert _create(bounded, "outsize", "grow", _sized_by_input()).status_code == 201
    x = tensor("float32", [1], [4 * 2**20])
    response = httpx.post(f"{bounded.url}/v1/graphs/outsize/layers/grow/apply", json={"inputs": [x]}, timeout=60)
    assert_error(response, 422, "tensor_too_large")  # before: 200 with 4 Mi elements


def test_uploaded_constants_are_not_folded_at_load(tmp_path: Path) -> None:
    """A tensor limit that lets the 2**27 constant through validation: only folding could cost."""
    server = ServerProcess(tmp_path / "state", "--max-tensor-elements", str(2**28)).start()
    try:
        assert server.proc is not None
        before = peak_rss_bytes(server.proc.pid)
        assert _create(server, "folding", "big", _folded_constant()).status_code == 201
        grown = peak_rss_bytes(server.proc.pid) - before
        assert grown < 256 * 2**20, f"peak RSS grew {grown / 2**20:.0f} MiB at create"  # before: +1 GiB
    finally:
        server.stop()


def test_a_run_past_the_timeout_is_terminated(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--request-timeout-s", str(TIMEOUT_S)).start()
    try:
        assert server.proc is not None
        assert _create(server, "endless", "loop", _endless_loop()).status_code == 201
        url = f"{server.url}/v1/graphs/endless/layers/loop/apply"
        with watch_health(server.url) as health:
            for _ in range(3):
                response = httpx.post(url, json={"inputs": [tensor("float32", [2], [1e12, 0])]}, timeout=60)
                assert_error(response, 503, "processing_timeout")
        health.assert_live()
        time.sleep(0.5)
        cpu = _cpu_seconds(server.proc.pid)
        time.sleep(3.0)
        busy = _cpu_seconds(server.proc.pid) - cpu
        assert busy < 0.3, f"the server used {busy:.2f} s of CPU in 3 s after the timeouts"  # before: runs went on
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 10  # before: SIGTERM waited for the runs
    finally:
        server.kill()


def test_limits_passed_by_one_shape_still_refuse_another(bounded: ServerProcess) -> None:
    """The output and cost limits are checked once per layer and input shape: a shape that passed
    (here, many times) says nothing of the next one, and a new layer of the same id starts afresh."""
    base = f"{bounded.url}/v1/graphs/costagain/layers"
    body = {"class": "MaxPooling2D", "name": "pool", "config": {"pool_size": 64, "strides": 1}}
    assert httpx.post(base, json=body).status_code == 201
    small = tensor("float32", [1, 70, 70, 1], [0.0] * 4900)
    for _ in range(3):
        assert httpx.post(f"{base}/pool/apply", json={"inputs": [small]}).status_code == 200
    large = tensor("float32", [1, 256, 256, 1], [0.0] * (256 * 256))
    assert_error(httpx.post(f"{base}/pool/apply", json={"inputs": [large]}, timeout=60), 422, "apply_too_costly")
    assert httpx.delete(f"{base}/pool").status_code == 204
    assert httpx.post(base, json={**body, "config": {"pool_size": 64, "strides": 1, "padding": "same"}}).status_code == 201
    wide = tensor("float32", [1, 70, 70, 1], [0.0] * 4900)  # 70 x 70 outputs x 4096 reads: 2e7, within
    assert httpx.post(f"{base}/pool/apply", json={"inputs": [wide]}).status_code == 200
    assert_error(httpx.post(f"{base}/pool/apply", json={"inputs": [large]}, timeout=60), 422, "apply_too_costly")
