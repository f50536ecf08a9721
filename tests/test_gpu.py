"""CUDA against CPU on the public conformance cases, and a set_weights/apply loop on the GPU.

Needs an NVIDIA GPU and the ``gpu`` extra (onnxruntime-gpu); everywhere else every test here is
skipped with the reason. Run them alone with ``pytest -m gpu -rs``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import layerserve
from tests.conformance.runner import Case, discover_cases, run_case
from tests.devices import case_outputs, cuda_unavailable_reason, weights_loop
from tests.server import ServerProcess
from tests.test_conformance import IMPLEMENTED

REASON = cuda_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

CASES = [(i, d) for i, d in discover_cases() if Case.load(d).data["class"] in IMPLEMENTED]
FLOAT32_RTOL = 1e-4
_graphs = itertools.count(1)


@pytest.fixture(scope="module")
def cuda_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("cuda") / "state", "--providers", "cuda,cpu",
                         "--require-providers").start(timeout=120)
    yield proc
    proc.stop()


@pytest.fixture
def cuda_conn(cuda_server: ServerProcess) -> Iterator[layerserve.Connection]:
    connection = layerserve.connect(cuda_server.url, graph=f"cuda{next(_graphs)}")
    yield connection
    connection.close()


def test_cuda_is_active_with_binding(cuda_server: ServerProcess) -> None:
    ready = httpx.get(cuda_server.url + "/readyz").json()
    assert ready["providers"][0] == "cuda" and ready["device"] == "cuda" and ready["io_binding"] is True


@pytest.mark.parametrize("directory", [d for _, d in CASES], ids=[i for i, _ in CASES])
def test_case_cuda_vs_cpu(cuda_conn: layerserve.Connection, conn: layerserve.Connection, directory: Path) -> None:
    case = Case.load(directory)
    run_case(cuda_conn, case)  # TensorFlow's reference, at the case's tolerance
    rtol = FLOAT32_RTOL if case.data["input_dtype"] == "float32" else case.tol["rtol"]
    for k, (gpu, cpu) in enumerate(zip(case_outputs(cuda_conn, case), case_outputs(conn, case), strict=True)):
        np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=rtol * 1e-2, err_msg=f"apply {k}")


def test_set_weights_apply_loop_on_cuda(cuda_conn: layerserve.Connection, conn: layerserve.Connection) -> None:
    for gpu, cpu in zip(weights_loop(cuda_conn, 11, steps=6, rtol=FLOAT32_RTOL),
                        weights_loop(conn, 11, steps=6), strict=True):
        np.testing.assert_allclose(gpu, cpu, rtol=FLOAT32_RTOL, atol=1e-6)
