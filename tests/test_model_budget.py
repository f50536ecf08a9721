"""Uploaded models are measured before anything expands them: nodes after inlining their
functions (``--max-model-nodes``), their inputs and outputs (``--max-model-edges``, default
100,000), nesting (``--max-model-depth``), and every shape inference computes against
``--max-tensor-elements``. A tiny hostile model is refused in milliseconds."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.probes import watch_health
from tests.server import ServerProcess
from tests.test_hostile import assert_error


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("budget") / "state", "--max-model-nodes", "1000",
                         "--max-model-depth", "24", "--max-tensor-elements", str(2**20)).start()
    yield proc
    proc.stop()


def _encoded(model: object) -> str:
    model.ir_version = 8  # type: ignore[attr-defined]
    return base64.b64encode(model.SerializeToString()).decode()  # type: ignore[attr-defined]


def _doubling_functions(depth: int, calls: int = 2) -> str:
    """f0 calls f1 twice, f1 calls f2 twice, ...: 2**depth nodes once inlined, a few KB as sent
    (``calls=1``: a plain chain of calls, one node, ``depth`` deep)."""
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    functions = []
    for k in range(depth):
        chain = [helper.make_node(f"f{k + 1}", ["x"], ["a"], domain="local"),
                 helper.make_node(f"f{k + 1}", ["a"], ["y"], domain="local")]
        if calls == 1:
            chain = [helper.make_node(f"f{k + 1}", ["x"], ["y"], domain="local")]
        functions.append(helper.make_function("local", f"f{k}", ["x"], ["y"], chain,
                                              [helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]))
    functions.append(helper.make_function("local", f"f{depth}", ["x"], ["y"], [helper.make_node("Neg", ["x"], ["y"])],
                                          [helper.make_opsetid("", 18)]))
    graph = helper.make_graph([helper.make_node("f0", ["inp"], ["y"], domain="local")], "g",
                              [f("inp", TensorProto.FLOAT, ["n"])], [f("y", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(graph, functions=functions,
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)])
    return _encoded(model)


def _big_constant() -> str:
    from onnx import TensorProto, helper, numpy_helper

    f = helper.make_tensor_value_info
    size = numpy_helper.from_array(np.array([2**27], np.int64), "size")
    nodes = [helper.make_node("ConstantOfShape", ["size"], ["ones"],
                              value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["ones"], ["total"], keepdims=0),
             helper.make_node("Mul", ["inp", "total"], ["y"])]
    graph = helper.make_graph(nodes, "g", [f("inp", TensorProto.FLOAT, ["n"])], [f("y", TensorProto.FLOAT, ["n"])],
                              [size])
    return _encoded(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _wide_concat(inputs: int, rank: int = 10_000) -> str:
    """One ``Concat`` node of ``inputs`` times a rank-``rank`` input (within any node budget):
    shape inference merges inputs x rank dims, seconds of CPU holding the GIL."""
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Concat", ["x"] * inputs, ["y"], axis=0)], "g",
                              [f("x", TensorProto.FLOAT, [1] * rank)], [f("y", TensorProto.FLOAT, [None] * rank)])
    return _encoded(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _wide_function(calls: int, inputs: int) -> str:
    """A function of one ``Concat`` of ``inputs`` inputs, called ``calls`` times: few nodes and a
    few KB as sent, ``calls`` x ``inputs`` node inputs once inlined."""
    from onnx import TensorProto, helper

    f = helper.make_tensor_value_info
    wide = helper.make_function("local", "wide", ["x"], ["y"], [helper.make_node("Concat", ["x"] * inputs, ["y"],
                                                                                 axis=0)],
                                [helper.make_opsetid("", 18)])
    nodes = [helper.make_node("wide", ["inp"], [f"y{k}"], domain="local") for k in range(calls)]
    graph = helper.make_graph(nodes, "g", [f("inp", TensorProto.FLOAT, ["n"])], [f("y0", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, functions=[wide],
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)])
    return _encoded(model)


def _create(server: ServerProcess, name: str, model: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/graphs/budget/layers", timeout=120,
                      json={"class": "Layer", "name": name, "config": {"model": model, "variables": []}})


def test_exponential_functions_are_refused_before_inlining(budgeted: ServerProcess) -> None:
    model = _doubling_functions(22)  # 4 Mi nodes once inlined
    assert len(base64.b64decode(model)) < 4096
    with watch_health(budgeted.url) as health:
        started = time.monotonic()
        response = _create(budgeted, "exploding", model)
        elapsed = time.monotonic() - started
    error = assert_error(response, 422, "invalid_custom_layer")
    assert "--max-model-nodes" in error["message"]
    assert elapsed < 2, elapsed  # before: shape inference expanded it for many seconds
    health.assert_live()


def test_a_model_within_the_budget_is_created(budgeted: ServerProcess) -> None:
    response = _create(budgeted, "small", _doubling_functions(5))
    assert response.status_code == 201, response.text  # 32 nodes, 6 deep


def test_deep_nesting_is_refused(budgeted: ServerProcess) -> None:
    error = assert_error(_create(budgeted, "deep", _doubling_functions(30, calls=1)), 422, "invalid_custom_layer")
    assert "--max-model-depth" in error["message"]  # one node, 31 calls deep


def test_inferred_shapes_obey_the_tensor_limit(budgeted: ServerProcess) -> None:
    error = assert_error(_create(budgeted, "huge", _big_constant()), 422, "invalid_custom_layer")
    assert "--max-tensor-elements" in error["message"]  # before: created (and folded: +1 GiB)


def test_a_node_with_too_many_inputs_is_refused_before_shape_inference(budgeted: ServerProcess) -> None:
    model = _wide_concat(200_000)  # one node, 200,001 edges; ~0.6 MB
    with watch_health(budgeted.url) as health:
        started = time.monotonic()
        response = _create(budgeted, "wide", model)
        elapsed = time.monotonic() - started
    error = assert_error(response, 422, "invalid_custom_layer")
    assert "--max-model-edges" in error["message"] and "100000" in error["message"], error
    assert error["details"]["field"] == "config.model"
    assert elapsed < 2, elapsed  # before: validated (seconds of shape inference) until a later limit refused it
    health.assert_live()


def test_edges_are_counted_once_functions_are_inlined(budgeted: ServerProcess) -> None:
    model = _wide_function(200, 1000)  # 200 nodes; 200 x 1,002 edges once inlined
    assert len(base64.b64decode(model)) < 10_000
    error = assert_error(_create(budgeted, "wide_calls", model), 422, "invalid_custom_layer")
    assert "--max-model-edges" in error["message"], error


def test_a_model_within_the_edge_budget_is_measured_further(budgeted: ServerProcess) -> None:
    error = assert_error(_create(budgeted, "wide_once", _wide_function(2, 1000)), 422, "invalid_custom_layer")
    assert "--max-model-edges" not in error["message"], error  # 2,004 edges: refused later, for its output only
