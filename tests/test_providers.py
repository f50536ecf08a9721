"""Execution provider selection: ordered lists, options, missing providers, --require-providers."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import onnxruntime as ort
import pytest

from layerserve.server.runtime.provider_options import ProviderOptionError, normalize_options, parse_size
from layerserve.server.runtime.providers import PROVIDER_NAMES, ProviderError, select_providers
from tests.server import ROOT, ServerProcess

# A GPU provider this machine cannot use (CUDA on a CPU-only box), so the tests run everywhere.
MISSING = next(p for p in ("cuda", "rocm", "dml", "coreml")
               if PROVIDER_NAMES[p] not in ort.get_available_providers())
CUDA_OPTIONS = {"cuda": {"device_id": 1, "memory_limit": "2GiB", "arena_strategy": "same_as_requested",
                         "cudnn_algo_search": "heuristic", "do_copy_in_default_stream": True}}


def test_friendly_options_become_onnxruntime_options() -> None:
    assert normalize_options(CUDA_OPTIONS, PROVIDER_NAMES) == {"cuda": {
        "device_id": "1", "gpu_mem_limit": str(2 * 2**30), "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1"}}
    # ONNX Runtime's own names and values pass unchanged.
    native = {"cuda": {"gpu_mem_limit": 1024, "arena_extend_strategy": "kNextPowerOfTwo"}}
    assert normalize_options(native, PROVIDER_NAMES) == {
        "cuda": {"gpu_mem_limit": "1024", "arena_extend_strategy": "kNextPowerOfTwo"}}


@pytest.mark.parametrize(("text", "size"), [(4096, 4096), ("512MiB", 512 * 2**20), ("1.5GB", 1_500_000_000),
                                            ("2 gib", 2 * 2**30), ("100", 100)])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("options", "message"), [
    ({"gpu": {}}, "unknown provider 'gpu'"),
    ({"cuda": {"arena_strategy": "greedy"}}, "cuda: arena_extend_strategy is one of"),
    ({"cuda": {"cudnn_algo_search": 3}}, "cudnn_conv_algo_search is one of"),
    ({"cuda": {"memory_limit": "lots"}}, "a size is a number of bytes"),
    ({"cuda": {"memory_limit": 0}}, "must be positive"),
    ({"cuda": {"device_id": -1}}, "device_id is a non-negative integer"),
    ({"cuda": [1]}, "options for cuda are an object"),
])
def test_bad_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ProviderOptionError, match=message):
        normalize_options(options, PROVIDER_NAMES)


def test_selection_keeps_order_and_reports_missing(caplog: pytest.LogCaptureFixture) -> None:
    selection = select_providers([MISSING, "cpu"], CUDA_OPTIONS if MISSING == "cuda" else None)
    assert (selection.active, selection.missing, selection.device) == (("cpu",), (MISSING,), "cpu")
    assert f"execution provider(s) {MISSING} requested but not usable" in caplog.text
    assert select_providers(["cpu"]).ort_providers() == [("CPUExecutionProvider", {})]


def test_selection_errors() -> None:
    with pytest.raises(ProviderError, match="--require-providers"):
        select_providers([MISSING, "cpu"], require=True)
    with pytest.raises(ProviderError, match="unknown execution provider"):
        select_providers(["cuda", "gpu"])
    with pytest.raises(ProviderError, match="invalid provider options: cuda: arena"):
        select_providers(["cpu"], {"cuda": {"arena_strategy": "x"}})


def test_server_reports_active_providers(tmp_path_factory: pytest.TempPathFactory) -> None:
    options = json.dumps({MISSING: {"device_id": 0}})
    proc = ServerProcess(tmp_path_factory.mktemp("prov") / "state", "--providers", f"{MISSING},cpu",
                         env={"LAYERSERVE_PROVIDER_OPTIONS": options}).start()
    try:
        ready = httpx.get(proc.url + "/readyz").json()
        config = httpx.get(proc.url + "/v1/config").json()
    finally:
        proc.stop()
    assert (ready["providers"], ready["missing_providers"]) == (["cpu"], [MISSING])
    assert config["providers"] == [MISSING, "cpu"] and config["provider_options"] == {MISSING: {"device_id": 0}}
    assert f"{MISSING} requested but not usable" in proc.log_path.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--providers", f"{MISSING},cpu", "--require-providers"], f"execution provider(s) {MISSING} requested"),
    (["--providers", "cpu", "--provider-options", '{"cuda": {"memory_limit": "x"}}'], "invalid provider options"),
])
def test_startup_errors(tmp_path_factory: pytest.TempPathFactory, args: list[str], message: str) -> None:
    state = tmp_path_factory.mktemp("fail") / "state"
    done = subprocess.run([sys.executable, "-m", "layerserve.server", "serve", "--port", "9", "--state-dir", str(state), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
