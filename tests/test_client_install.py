"""The client imports and works without the server's dependencies (onnxruntime, onnx, fastapi)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.server import ROOT, ServerProcess

PROGRAM = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"onnxruntime", "onnx", "fastapi", "uvicorn", "starlette", "pydantic"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import layerserve
    layerserve.connect(sys.argv[1], graph="clientonly")
    layer = layerserve.layers.Dense(2)
    y = layer(np.ones((1, 3), np.float32))
    assert y.shape == (1, 2), y.shape
    assert "onnxruntime" not in sys.modules and "fastapi" not in sys.modules
    print("ok", layer.name)
""")


def test_client_without_server_dependencies(server: ServerProcess) -> None:
    result = subprocess.run([sys.executable, "-c", PROGRAM, server.url], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok dense_1"


def test_cli_help_explains_flags() -> None:
    result = subprocess.run([sys.executable, "-m", "layerserve.server", "serve", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--state-dir", "--providers", "--token", "--log-level"):
        assert flag in result.stdout
