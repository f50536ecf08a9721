"""ONNX Runtime at start-up: load the providers before the first request, and say which build runs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from layerserve.server.runtime.providers import ProviderSelection

__all__ = ["runtime_version", "warm_up_runtime"]


def runtime_version() -> str:
    """The ONNX Runtime version, as ``/readyz`` reports it."""
    return str(ort.__version__)


def warm_up_runtime(providers: ProviderSelection) -> None:
    """Create and run one trivial session: the providers load now, not on the first request."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "warm_up", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    session = ort.InferenceSession(model.SerializeToString(), providers=providers.ort_providers())
    session.run(None, {"x": np.zeros(1, np.float32)})
