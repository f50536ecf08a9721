"""Checks backward graphs against central finite differences, both run by ONNX Runtime.

The checked function is ``L = sum_i sum(y_i * w_i)`` with fixed random weights ``w_i`` (the
``grad_ys``), so every output cell takes part with a different weight.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from layerserve.server.core.gradients import append_gradients

# (finite-difference step, rtol, atol relative to the gradient's scale) per dtype
TOLERANCE = {"float64": (1e-6, 1e-6, 1e-7), "float32": (1e-2, 1e-2, 3e-3), "float16": (1e-1, 5e-2, 5e-2)}
_MAX_PROBES = 24  # cells probed per x (all of them when there are fewer)


@dataclass
class Case:
    graph: onnx.GraphProto
    feeds: dict[str, np.ndarray]
    xs: list[str]
    ys: list[str]
    stop: set[str] = field(default_factory=set)
    unconnected: set[str] = field(default_factory=set)  # xs whose gradient must be None


def model_of(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="test")
    model.ir_version = 8
    return model


def session(graph: onnx.GraphProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_of(graph).SerializeToString(), options, providers=["CPUExecutionProvider"])


def with_gradients(case: Case, weights: dict[str, np.ndarray]) -> tuple[onnx.GraphProto, list[str | None]]:
    """A copy of the case's graph with the weights as inputs and the gradients as outputs."""
    graph = copy.deepcopy(case.graph)
    names = []
    for y in case.ys:
        name = f"w_{y}"
        graph.input.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(weights[y].dtype),
                                                         list(weights[y].shape)))
        names.append(name)
    grads = append_gradients(graph, ys=list(case.ys), xs=list(case.xs), grad_ys=list(names), stop=set(case.stop))
    del graph.output[:]
    for g in grads:
        if g is not None:
            graph.output.append(onnx.ValueInfoProto(name=g))
    return graph, grads


def analytic(case: Case, seed: int = 0) -> tuple[list[np.ndarray | None], dict[str, np.ndarray]]:
    weights = output_weights(case, seed)
    graph, grads = with_gradients(case, weights)
    feeds = {**case.feeds, **{f"w_{y}": w for y, w in weights.items()}}
    outs = iter(session(graph).run([g for g in grads if g is not None], feeds))
    return [next(outs) if g is not None else None for g in grads], weights


def output_weights(case: Case, seed: int) -> dict[str, np.ndarray]:
    values = forward(case, case.feeds)
    rng = np.random.default_rng(seed + 1000)
    return {y: np.asarray(rng.uniform(0.5, 1.5, v.shape) * rng.choice([-1, 1], v.shape), dtype=v.dtype)
            for y, v in zip(case.ys, values, strict=True)}


def forward(case: Case, feeds: dict[str, np.ndarray], sess: ort.InferenceSession | None = None) -> list[np.ndarray]:
    graph = copy.deepcopy(case.graph)
    del graph.output[:]
    graph.output.extend(onnx.ValueInfoProto(name=y) for y in case.ys)
    return list((sess or session(graph)).run(list(case.ys), feeds))


def numeric(case: Case, x: str, weights: dict[str, np.ndarray], step: float, seed: int = 0) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """(probed flat cells, central differences there), the loss summed in float64."""
    graph = copy.deepcopy(case.graph)
    del graph.output[:]
    graph.output.extend(onnx.ValueInfoProto(name=y) for y in case.ys)
    sess = session(graph)
    base = case.feeds[x]
    rng = np.random.default_rng(seed)
    cells = np.arange(base.size) if base.size <= _MAX_PROBES else rng.choice(base.size, _MAX_PROBES, replace=False)

    def loss(value: np.ndarray) -> float:
        outs = sess.run(list(case.ys), {**case.feeds, x: value})
        return float(sum(np.sum(o.astype(np.float64) * weights[y].astype(np.float64))
                         for y, o in zip(case.ys, outs, strict=True)))

    diffs = []
    for cell in cells:
        up, down = base.copy().reshape(-1), base.copy().reshape(-1)
        h = step * max(1.0, abs(float(up[cell])))
        up[cell] += h
        down[cell] -= h
        actual_h = float(up[cell]) - float(down[cell])  # the step as rounded to the dtype
        diffs.append((loss(up.reshape(base.shape)) - loss(down.reshape(base.shape))) / actual_h)
    return cells, np.asarray(diffs)


def check(case: Case, *, dtype: str | None = None, seed: int = 0) -> list[np.ndarray | None]:
    """Assert each x's gradient matches finite differences; returns the gradients."""
    grads, weights = analytic(case, seed)
    dtype = dtype or _coarsest([case.feeds[x].dtype for x in case.xs] + [w.dtype for w in weights.values()])
    step, rtol, atol = TOLERANCE[dtype]
    for x, grad in zip(case.xs, grads, strict=True):
        if x in case.unconnected:
            assert grad is None, f"{x} is not connected, yet has a gradient"
            continue
        assert grad is not None, f"no gradient for {x}"
        assert grad.shape == case.feeds[x].shape, f"gradient of {x}: shape {grad.shape} != {case.feeds[x].shape}"
        assert grad.dtype == case.feeds[x].dtype, f"gradient of {x}: dtype {grad.dtype}"
        cells, expected = numeric(case, x, weights, step, seed)
        got = grad.reshape(-1)[cells].astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale, err_msg=f"gradient of {x}")
    return grads


def _coarsest(dtypes: list[np.dtype]) -> str:
    return min((str(d) for d in dtypes), key=lambda d: np.finfo(d).bits)


def graph_of(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: list[str],
             constants: dict[str, np.ndarray] | None = None) -> onnx.GraphProto:
    return helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
         for k, v in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (constants or {}).items()])


def concrete(graph: onnx.GraphProto, batch: int) -> onnx.GraphProto:
    """The graph with every symbolic dim (the batch) set to ``batch``."""
    graph = copy.deepcopy(graph)
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_value = batch
    return graph
