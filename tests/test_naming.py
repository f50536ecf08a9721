"""TensorFlow's naming sequences (conformance/naming.json) replayed through the client."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerserve
from tests.conformance.runner import EXTRA, HERE, SHARED

IMPLEMENTED = {
    "Dense", "dense", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "Dropout", "Flatten", "max_pooling1d",
    "max_pooling2d", "max_pooling3d", "average_pooling1d", "average_pooling2d", "average_pooling3d",
    "batch_normalization", "dropout", "flatten",
    "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
    "conv1d", "conv2d", "conv3d", "conv2d_transpose", "conv3d_transpose", "separable_conv1d", "separable_conv2d",
}


def _naming_files() -> list[Path]:
    files = [HERE / "naming.json", EXTRA / "naming_extra.json"]
    shared = SHARED / "naming.json"
    if shared.is_file() and shared.read_bytes() != files[0].read_bytes():
        files.append(shared)
    return files


def _input(shape: list[int | None]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal([2 if d is None else d for d in shape]).astype(np.float32)


def _step(conn: layerserve.Connection, refs: dict[str, Any], step: dict[str, Any]) -> Any:
    """Runs one step; returns what TF's result describes."""
    if step["op"] == "new":
        refs[step["ref"]] = getattr(conn.layers, step["class"])(**step["kwargs"])
        return {"name": refs[step["ref"]].name}
    if step["op"] == "call":
        layer = refs[step["ref"]]
        extra = {"training": step["training"]} if "training" in step else {}
        layer.apply(_input(step["input_shape"]), **extra)
        return {"name": layer.name, "scope_name": layer.scope_name, "variables": [v.name for v in layer.variables]}
    before = [v.name for v in conn.global_variables()]
    getattr(conn.layers, step["fn"])(_input(step["input_shape"]), **step["kwargs"])
    return {"new_variables": [n for n in (v.name for v in conn.global_variables()) if n not in before]}


def _run_step(conn: layerserve.Connection, refs: dict[str, Any], step: dict[str, Any]) -> None:
    if "error" in step:
        with pytest.raises(getattr(builtins, step["error"]["type"])) as info:
            _step(conn, refs, step)
        assert str(info.value) == step["error"]["message"], step
        return
    assert _step(conn, refs, step) == step["result"], step


@pytest.mark.parametrize("path", _naming_files(), ids=lambda p: p.parent.name)
def test_naming_sequence(conn: layerserve.Connection, path: Path) -> None:
    data = json.loads(path.read_text())
    steps = data["steps"]
    classes = {s.get("class") or s.get("fn") for s in steps if s["op"] != "call"}
    if not classes <= IMPLEMENTED:
        pytest.skip(f"needs {sorted(classes - IMPLEMENTED)}")
    refs: dict[str, Any] = {}
    for step in steps:
        _run_step(conn, refs, step)
    assert [v.name for v in conn.global_variables()] == data["global_variables_at_end"]
