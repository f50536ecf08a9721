"""Helpers to run the same layers on two servers (two devices, or two execution paths) and compare."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

import layerserve
from tests.conformance.runner import Case

__all__ = ["case_outputs", "cuda_unavailable_reason", "weights_loop"]


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be tested here, or None when a session really gets the CUDA provider."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (f"no CUDA: onnxruntime {ort.__version__} here has {', '.join(ort.get_available_providers())} "
                "(install the 'gpu' extra on a machine with an NVIDIA GPU)")
    from layerserve.server.runtime.providers import select_providers

    if "cuda" not in select_providers(["cuda"]).active:
        return "no CUDA device: onnxruntime-gpu is installed but a session falls back to the CPU"
    return None


def case_outputs(conn: layerserve.Connection, case: Case) -> list[np.ndarray]:
    """The case's layer with its given weights, and the outputs of its deterministic applies."""
    layer = getattr(conn.layers, case.data["class"])(**case.data["kwargs"])
    if case.data["weights"]:
        first = case.input(0)
        layer.build([None, *first.shape[1:]], dtype=first.dtype)
        layer.set_weights([case.arrays[w["array"]] for w in case.data["weights"]])
    outputs = []
    for apply in case.data["applies"]:
        if apply["stochastic"]:
            continue
        x = case.input(apply["input"])
        outputs.append(layer.apply(x) if apply["training"] is None else layer.apply(x, training=apply["training"]))
    return outputs


def weights_loop(conn: layerserve.Connection, seed: int, steps: int = 4, rtol: float = 1e-5) -> list[np.ndarray]:
    """set_weights then apply, ``steps`` times on one Dense; each output checked against numpy."""
    rng = np.random.default_rng(seed)
    dense = conn.layers.Dense(16, activation="relu")
    x = rng.standard_normal((8, 32)).astype(np.float32)
    outputs = []
    for _ in range(steps):
        kernel = rng.standard_normal((32, 16)).astype(np.float32)
        bias = rng.standard_normal(16).astype(np.float32)
        if not dense.built:
            dense.build([None, 32])
        dense.set_weights([kernel, bias])
        y = dense.apply(x)
        np.testing.assert_allclose(y, np.maximum(x @ kernel + bias, 0), rtol=rtol, atol=1e-5)
        outputs.append(y)
    return outputs
