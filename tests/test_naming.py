"""TensorFlow's naming sequences (conformance/naming.json) replayed through the client."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import client
from tests.conformance.runner import HERE, SHARED

IMPLEMENTED = {
    "Dense", "dense", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "Dropout", "Flatten", "max_pooling1d",
    "max_pooling2d", "max_pooling3d", "average_pooling1d", "average_pooling2d", "average_pooling3d",
    "batch_normalization", "dropout", "flatten",
    "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
    "conv1d", "conv2d", "conv3d", "conv2d_transpose", "conv3d_transpose", "separable_conv1d", "separable_conv2d",
}


def _naming_files() -> list[Path]:
    files = [HERE / "naming.json"]
    shared = SHARED / "naming.json"
    if shared.is_file() and shared.read_bytes() != files[0].read_bytes():
        files.append(shared)
    return files


def _input(shape: list[int | None]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal([2 if d is None else d for d in shape]).astype(np.float32)


def _run_step(conn: client.Connection, refs: dict[str, Any], step: dict[str, Any]) -> None:
    if step["op"] == "new":
        refs[step["ref"]] = getattr(conn.layers, step["class"])(**step["kwargs"])
        assert refs[step["ref"]].name == step["result"]["name"]
    elif step["op"] == "call":
        layer = refs[step["ref"]]
        extra = {"training": step["training"]} if "training" in step else {}
        layer.apply(_input(step["input_shape"]), **extra)
        want = step["result"]
        assert (layer.name, layer.scope_name) == (want["name"], want["scope_name"])
        assert [v.name for v in layer.variables] == want["variables"]
    else:
        before = [v.name for v in conn.global_variables()]
        fn = getattr(conn.layers, step["fn"])
        if "error" in step:
            with pytest.raises(getattr(builtins, step["error"]["type"])) as info:
                fn(_input(step["input_shape"]), **step["kwargs"])
            assert str(info.value) == step["error"]["message"]
            return
        fn(_input(step["input_shape"]), **step["kwargs"])
        after = [v.name for v in conn.global_variables()]
        assert [n for n in after if n not in before] == step["result"]["new_variables"]


@pytest.mark.parametrize("path", _naming_files(), ids=lambda p: p.parent.name)
def test_naming_sequence(conn: client.Connection, path: Path) -> None:
    data = json.loads(path.read_text())
    steps = data["steps"]
    classes = {s.get("class") or s.get("fn") for s in steps if s["op"] != "call"}
    if not classes <= IMPLEMENTED:
        pytest.skip(f"needs {sorted(classes - IMPLEMENTED)}")
    refs: dict[str, Any] = {}
    for step in steps:
        _run_step(conn, refs, step)
    assert [v.name for v in conn.global_variables()] == data["global_variables_at_end"]
