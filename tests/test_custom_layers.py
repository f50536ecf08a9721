"""Custom layers (``class: "Layer"``): the README example, Dense re-implemented, several inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerserve
from layerserve import ops
from tests.conformance.runner import EXTRA, Case, _check_flip, _check_losses, _check_updates, _close, discover_cases
from tests.server import ServerProcess

README = Path(__file__).resolve().parent.parent / "README.md"
# the reference cases, not generate.py's extra ones (other ranks and activations than this Dense takes)
DENSE_CASES = [(i, d) for i, d in discover_cases() if Case.load(d).data["class"] == "Dense" and EXTRA not in d.parents]


def readme_example() -> str:
    """The python block after the README's ``<!-- example: custom-layer -->`` marker."""
    text = README.read_text()
    match = re.search(r"<!-- example: custom-layer -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its custom-layer example"
    return match.group(1)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fresh server of this module's own, with its own state directory (restarted below)."""
    proc = ServerProcess(tmp_path_factory.mktemp("custom") / "state", "--max-model-bytes", "200000").start()
    yield proc
    proc.stop()


def test_readme_example_round_trips(own_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERSERVE_URL", own_server.url)
    ns: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_example(), str(README), "exec"), ns)  # exactly as written, on a fresh server
    layer, x, y = ns["layer"], ns["x"], ns["y"]
    kernel = np.full((3, 2), 0.5, np.float32)
    expected = x @ kernel
    assert layer.name == "mean_tracker_1" and layer.scope_name == "mean_tracker"
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    activity, weight = np.float32(0.001) * np.sum(expected**2), np.float32(0.01) * np.sum(kernel**2)
    np.testing.assert_allclose(layer.losses, [activity, weight], rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for(x), [activity], rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for(None), [weight], rtol=1e-6)
    assert layer.get_losses_for(x + 1) == [] and layer.get_updates_for(x) == []  # the example ran them
    assert [v.name for v in layer.non_trainable_variables] == ["mean_tracker/moving_mean:0"]
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * expected.mean(axis=0), rtol=1e-6)

    # Two more training applies: each leaves one pending update; running both composes them.
    x2 = x * 2
    layer(x2, training=True)
    layer(x, training=False)  # inference: no update
    [pending] = layer.get_updates_for(x2)
    before = layer.moving_mean.numpy()
    np.testing.assert_allclose(pending.value, 0.9 * before + 0.1 * (x2 @ kernel).mean(axis=0), rtol=1e-6)
    assert layer.get_updates_for(x) == []
    layer.trainable = False
    assert layer.updates == [] and layer.trainable_variables == []
    layer.trainable = True

    own_server.stop()  # everything survives a restart: variables, pending updates, losses
    own_server.start()
    assert [u.variable for u in layer.get_updates_for(x2)] == ["mean_tracker/moving_mean:0"]
    layer.run_updates(x2)
    np.testing.assert_allclose(layer.moving_mean.numpy(), pending.value, rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for(None), [weight], rtol=1e-6)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
    layer.set_weights([kernel * 2, before])
    np.testing.assert_allclose(layer.get_losses_for(None), [4 * weight], rtol=1e-6)


class Dense(layerserve.layers.Layer):
    """tf.compat.v1.layers.Dense as a custom layer (same class name, so the same names)."""

    batch_separable = True  # rows are independent: inference applies take the batching path

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,  # noqa: FBT002 - TF's Dense
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.activation, self.use_bias = units, activation, use_bias
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.input_spec = layerserve.InputSpec(min_ndim=2)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight("kernel", [input_shape[-1], self.units], regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", [self.units], initializer="zeros", regularizer=self.bias_regularizer)

    def call(self, inputs: Any) -> Any:
        y = ops.matmul(inputs, self.kernel)
        y = y + self.bias if self.use_bias else y
        return {None: ops.identity, "linear": ops.identity, "relu": ops.nn.relu, "tanh": ops.tanh,
                "sigmoid": ops.sigmoid, "softmax": ops.softmax}[self.activation](y)


@pytest.mark.parametrize("directory", [d for _, d in DENSE_CASES], ids=[i for i, _ in DENSE_CASES])
def test_custom_dense_matches_builtin_dense(conn: layerserve.Connection, directory: Path) -> None:
    case = Case.load(directory)
    custom = Dense(**case.data["kwargs"], dtype=case.data["input_dtype"])
    assert custom.name == case.data["layer_name_at_construction"]
    first = case.input(0)
    custom.build([None, *first.shape[1:]])
    custom.set_weights([case.arrays[w["array"]] for w in case.data["weights"]])
    builtin = conn.layers.Dense(**case.data["kwargs"], name="builtin")
    builtin.build([None, *first.shape[1:]], dtype=first.dtype)
    builtin.set_weights([case.arrays[w["array"]] for w in case.data["weights"]])
    for apply in case.data["applies"]:
        x = case.input(apply["input"])
        got = custom(x)
        _close(got, case.arrays[apply["output"]], case.tol, "custom Dense output")
        np.testing.assert_allclose(got, builtin(x), rtol=1e-6, atol=1e-6)
        assert list(custom.compute_output_shape([None, *x.shape[1:]])) == apply["compute_output_shape"]
    want = case.data["layer"]
    assert custom.scope_name == want["scope_name"] and custom.dtype == want["dtype"]
    for key in ("variables", "trainable_variables", "non_trainable_variables"):
        assert [v.name for v in getattr(custom, key)] == want[key], key
    assert custom.count_params() == want["count_params"]
    _check_losses(custom, case)
    _check_updates(custom, case)
    _check_flip(custom, case)


class Gate(layerserve.layers.Layer):
    """Two inputs: ``a * w + b``; an activity loss on the output, a callable weight loss, and an
    assigned running maximum updated in training only."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_spec = [layerserve.InputSpec(ndim=2), layerserve.InputSpec(ndim=2)]

    def build(self, input_shape: Any) -> None:
        self.w = self.add_weight("w", [input_shape[0][-1]], initializer=np.array([1.0, 2.0, 3.0]))
        self.peak = self.add_weight("peak", [], initializer="zeros", trainable=False)
        self.add_loss(lambda: 0.5 * ops.reduce_sum(ops.abs(self.w)))

    def call(self, inputs: Any, training: Any = None) -> Any:
        a, b = inputs
        y = a * self.w + b
        self.add_loss(ops.reduce_mean(y))
        self.add_update(ops.assign(self.peak, ops.maximum(self.peak, ops.reduce_max(y))))
        return ops.where(training, y * 2.0, y)  # the training flag reaches the graph


def test_several_inputs_losses_updates_and_export(conn: layerserve.Connection) -> None:
    import httpx
    import onnxruntime as ort

    gate = Gate()
    assert gate.name == "gate_1" and not gate.built
    a = np.ones((2, 3), np.float32)
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = gate([a, b], training=True)
    expected = a * np.array([1, 2, 3], np.float32) + b
    np.testing.assert_allclose(y, 2 * expected)
    b2 = b + 10
    np.testing.assert_allclose(gate([a, b2]), expected + 10)  # inference: a loss, no update
    np.testing.assert_allclose(gate.get_losses_for(b), [expected.mean()])
    np.testing.assert_allclose(gate.get_losses_for([a]), [expected.mean(), (expected + 10).mean()])
    np.testing.assert_allclose(gate.get_losses_for(None), [3.0])
    assert len(gate.get_updates_for(a)) == 1 and gate.get_updates_for(b2) == []
    gate.run_updates()
    assert gate.peak.numpy() == expected.max()
    with pytest.raises(ValueError, match="takes 2 input"):
        gate(a)
    with pytest.raises(ValueError, match='Input 1 of layer "gate_1" is incompatible'):
        gate([a, b[None]])
    assert isinstance(gate.input_spec, list) and gate.input_spec[1].ndim == 2
    raw = httpx.get(f"{conn.url}/v1/graphs/{conn.graph}/layers/{gate.id}/onnx").content
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["y"], {"x": a, "x1": b})[0], expected)


# ---- hostile uploads -----------------------------------------------------------------------
def _model_bytes(dtype: int = 1, opset: int = 18, *, external: bool = False, pad: int = 0) -> bytes:
    """inputs (inp, kernel, mm) -> outputs (y = inp @ kernel, act = sum(y), m = mean(y, 0))."""
    import onnx
    from onnx import helper, numpy_helper

    f = helper.make_tensor_value_info
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    if external:
        axes.data_location = onnx.TensorProto.EXTERNAL
        axes.external_data.add(key="location", value="../../etc/passwd")
    nodes = [helper.make_node("MatMul", ["inp", "kernel"], ["y"]),
             helper.make_node("ReduceSum", ["y"], ["act"], keepdims=0),
             helper.make_node("ReduceMean", ["y", "axes"], ["m"], keepdims=0)]
    constants = [axes] + ([numpy_helper.from_array(np.zeros(pad, np.int64), "pad")] if pad else [])
    graph = helper.make_graph(
        nodes, "g", [f("inp", dtype, ["n", 3]), f("kernel", dtype, [3, 2]), f("mm", dtype, [2])],
        [f("y", dtype, ["n", 2]), f("act", dtype, []), f("m", dtype, [2])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _config(raw: bytes | None = None, **changes: Any) -> dict[str, Any]:
    import base64

    config = {"model": base64.b64encode(raw if raw is not None else _model_bytes()).decode(),
              "variables": [{"name": "kernel", "shape": ["input:-1", 2], "dtype": "float32"},
                            {"name": "mm", "shape": [2], "dtype": "float32", "trainable": False}],
              "losses": [{"output": "act", "conditional": True}],
              "updates": [{"output": "m", "variable": "mm", "momentum": 0.9}]}
    config.update(changes)
    return config


def _variables(**kernel: Any) -> list[dict[str, Any]]:
    return [{"name": "kernel", "shape": ["input:-1", 2], "dtype": "float32", **kernel},
            {"name": "mm", "shape": [2], "dtype": "float32", "trainable": False}]


def _conv_float64() -> bytes:
    import onnx
    from onnx import helper

    f = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Conv", ["inp", "kernel"], ["y"])], "g",
                              [f("inp", onnx.TensorProto.DOUBLE, ["n", 1, 4, 4]),
                               f("kernel", onnx.TensorProto.DOUBLE, [1, 1, 3, 3])],
                              [f("y", onnx.TensorProto.DOUBLE, ["n", 1, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


HOSTILE = {
    "not_onnx": (lambda: _config(b"this is a text file, not a model"), "not an ONNX model"),
    "not_base64": (lambda: {**_config(), "model": "%%% not base64 %%%"}, "not valid base64"),
    "truncated": (lambda: _config(_model_bytes()[:150]), "not an ONNX model|onnx.checker"),
    "opset_too_new": (lambda: _config(_model_bytes(opset=40)), "[Oo]pset 40"),
    "op_runtime_lacks": (lambda: _config(_conv_float64(), losses=[], updates=[], variables=[
        {"name": "kernel", "shape": [1, 1, 3, 3], "dtype": "float64"}]), "cannot run it.*Conv"),
    "variable_name": (lambda: _config(variables=[{**_variables()[0], "name": "weights"}, _variables()[1]]),
                      "graph input 1 is 'kernel', expected variable 'weights'"),
    "variable_dtype": (lambda: _config(variables=_variables(dtype="float64")), "is float64 but graph input"),
    "variable_rank": (lambda: _config(variables=_variables(shape=[6])), "rank 1 but graph input 'kernel' has rank 2"),
    "variable_dim": (lambda: _config(variables=_variables(shape=[4, 2])), "dim 0 is 4 but graph input"),
    "missing_variable": (lambda: _config(variables=_variables()[:1], updates=[]), "expected variable 'kernel'"),
    "update_unknown_variable": (lambda: _config(updates=[{"output": "m", "variable": "nope"}]),
                                "names unknown variable 'nope'"),
    "update_trainable_variable": (lambda: _config(updates=[{"output": "m", "variable": "kernel"}]),
                                  "names trainable variable 'kernel'"),
    "update_unknown_output": (lambda: _config(updates=[{"output": "zz", "variable": "mm"}]),
                              "'zz' is not a graph output"),
    "unconditional_loss_of_input": (lambda: _config(losses=[{"output": "act", "conditional": False}]),
                                    "depends on input 'inp'"),
    "external_data": (lambda: _config(_model_bytes(external=True)), "external data"),
    "unknown_field": (lambda: _config(script="rm -rf /"), "not understood"),
}


@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_upload_is_rejected_and_creates_nothing(server: ServerProcess, label: str) -> None:
    import httpx

    make, message = HOSTILE[label]
    graph = f"hostile_{label}"
    response = httpx.post(f"{server.url}/v1/graphs/{graph}/layers", json={"class": "Layer", "config": make()})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert re.search(message, error["message"]), error["message"]
    assert graph not in httpx.get(f"{server.url}/v1/graphs").json()["graphs"]


def test_oversized_upload_is_413_and_valid_one_gets_the_first_name(own_server: ServerProcess) -> None:
    import httpx

    url = f"{own_server.url}/v1/graphs/sizes/layers"
    response = httpx.post(url, json={"class": "Layer", "config": _config(_model_bytes(pad=40_000))})
    assert response.status_code == 413, response.text
    assert "more than the limit of 200000 bytes" in response.json()["error"]["message"]
    assert "sizes" not in httpx.get(f"{own_server.url}/v1/graphs").json()["graphs"]
    created = httpx.post(url, json={"class": "Layer", "config": _config()})
    assert created.status_code == 201 and created.json()["name"] == "layer_1"


def test_client_imports_without_onnx() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None\n"
            "import layerserve, layerserve.ops, layerserve.layers.custom\n"
            "class Echo(layerserve.layers.Layer):\n"
            "    def call(self, inputs):\n"
            "        return inputs\n"
            "try:\n"
            "    Echo()\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'layerserve[custom]'" in result.stdout


def test_kind_exposes_inputs_and_batching_flag() -> None:
    from layerserve.server.layers.custom import CustomLayer

    kind = CustomLayer.from_kwargs(_config())
    assert kind.input_metadata() == [{"name": "inp", "datatype": "float32", "shape": [-1, 3]}]
    assert kind.num_inputs == 1 and kind.num_outputs == 1 and not kind.batch_separable
    assert CustomLayer.from_kwargs(_config(batch_separable=True)).batch_separable


def test_base_layer_is_the_identity(conn: layerserve.Connection) -> None:
    layer = layerserve.layers.Layer()
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    assert layer.name == "layer_1"
    np.testing.assert_array_equal(layer(x), x)
    # A custom layer computes in the dtype it was defined for (float32 unless given), not the input's.
    assert layer.dtype == "float32" and layer.variables == []
    assert layer(x.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("binary", [False, True])
def test_several_inputs_over_oip_v2(server: ServerProcess, conn: layerserve.Connection, binary: bool) -> None:
    import tritonclient.http as triton

    gate = Gate()
    a = np.ones((2, 3), np.float32)
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = gate([a, b])
    tc = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        model = f"{conn.graph}.{gate.name}"
        meta = tc.get_model_metadata(model)
        assert [i["name"] for i in meta["inputs"]] == ["input_0", "input_1"]
        assert [i["datatype"] for i in meta["inputs"]] == ["FP32", "FP32"]
        inputs = [triton.InferInput(f"input_{k}", [2, 3], "FP32") for k in range(2)]
        for tensor, value in zip(inputs, (a, b)):
            tensor.set_data_from_numpy(value, binary_data=binary)
        result = tc.infer(model, inputs[::-1], outputs=[triton.InferRequestedOutput("output_0", binary_data=binary)])
        np.testing.assert_array_equal(result.as_numpy("output_0"), expected)
    finally:
        tc.close()
