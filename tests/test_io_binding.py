"""The device-resident path (OrtValues + IOBinding) on the CPU: same numbers, state released."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import layerserve
from layerserve.server.config import Settings
from layerserve.server.plane import DataPlane
from layerserve.server.runtime.binding import ResidentVariables, binding_enabled, run_bound
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.memory import memory_report
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import CompiledLayer, SessionCache
from layerserve.server.store.filesystem import FilesystemStore
from tests.conformance.runner import Case, discover_cases, run_case
from tests.devices import weights_loop
from tests.server import ServerProcess
from tests.test_conformance import IMPLEMENTED

_graphs = itertools.count(1)
CASES = [(i, d) for i, d in discover_cases() if Case.load(d).data["class"] in IMPLEMENTED]


@pytest.fixture(scope="module")
def bound_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("bound") / "state", "--io-binding", "on").start()
    yield proc
    proc.stop()


@pytest.fixture
def bound_conn(bound_server: ServerProcess) -> Iterator[layerserve.Connection]:
    connection = layerserve.connect(bound_server.url, graph=f"bound{next(_graphs)}")
    yield connection
    connection.close()


def test_server_reports_binding(bound_server: ServerProcess, server: ServerProcess) -> None:
    bound = httpx.get(bound_server.url + "/readyz").json()
    plain = httpx.get(server.url + "/readyz").json()
    assert (bound["io_binding"], bound["device"], bound["providers"]) == (True, "cpu", ["cpu"])
    assert plain["io_binding"] is False  # auto: no CUDA here, plain feeds


@pytest.mark.parametrize("directory", [d for _, d in CASES], ids=[i for i, _ in CASES])
def test_conformance_through_binding(bound_conn: layerserve.Connection, directory: Path) -> None:
    run_case(bound_conn, Case.load(directory))  # outputs, losses and updates as TensorFlow's


def test_set_weights_apply_loop(bound_conn: layerserve.Connection, conn: layerserve.Connection) -> None:
    """New weights reach the device before the next run; each step is bit-identical to the unbound
    server's (same kernels on the same device)."""
    for bound, plain in zip(weights_loop(bound_conn, 7), weights_loop(conn, 7), strict=True):
        np.testing.assert_array_equal(bound, plain)


def test_deleted_layer_releases_device_values_and_sessions(tmp_path: Path) -> None:
    providers = select_providers(["cpu"])
    executor = Executor(SessionCache(providers), io_binding=True)
    plane = DataPlane(Settings(state_dir=str(tmp_path)), FilesystemStore(tmp_path), executor)
    layer = plane.create_layer("g", "Dense", {"units": 5})
    plane.apply("g", layer.id, [np.ones((2, 3), np.float32)])
    plane.apply("g", layer.id, [np.ones((4, 3), np.float32)])  # another batch size: the same session and device values
    report = memory_report(executor)
    assert (report["sessions_cached"], report["resident_layers"]) == (1, 1)
    assert report["resident_variable_bytes"] == (3 * 5 + 5) * 4
    plane.set_weights("g", layer.id, [np.zeros((3, 5), np.float32), np.ones(5, np.float32)])
    y = plane.apply("g", layer.id, [np.ones((2, 3), np.float32)]).outputs[0]
    np.testing.assert_array_equal(y, np.ones((2, 5), np.float32))  # the new version, not the cached one
    plane.delete_layer("g", layer.id)
    report = memory_report(executor)
    assert (report["sessions_cached"], report["resident_layers"], report["resident_variable_bytes"]) == (0, 0, 0)


def test_binding_modes() -> None:
    cpu = select_providers(["cpu"])
    assert (binding_enabled("auto", cpu), binding_enabled("on", cpu), binding_enabled("off", cpu)) == (False, True, False)
    with pytest.raises(ValueError, match="io_binding"):
        binding_enabled("sometimes", cpu)


def test_scalars_keep_their_rank() -> None:
    """0-d values (a custom layer's scalar variable, the bool training flag) are bound as 0-d."""
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Where", ["training", "m", "x"], ["y"]),
             helper.make_node("Identity", ["s"], ["s_seen"]), helper.make_node("Identity", ["training"], ["t_seen"])]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2]),
        helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        helper.make_tensor_value_info("training", TensorProto.BOOL, []),
    ], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2]),
        helper.make_tensor_value_info("s_seen", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("t_seen", TensorProto.BOOL, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    compiled = CompiledLayer(session, ["y", "s_seen", "t_seen"])
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    values = ResidentVariables().values("g/1", {"s": np.array(3.0, np.float32)})
    for flag in (True, False):
        y, s_seen, t_seen = run_bound(compiled, values, {"x": x, "training": np.array(flag)}, "cpu", 0)
        np.testing.assert_array_equal(y, x * 3 if flag else x)
        assert (s_seen.shape, t_seen.shape) == ((), ())
