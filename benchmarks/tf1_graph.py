"""``python -m benchmarks.tf1_graph``: TF1 graph mode's ``Session.run`` against its floors and TF.

Starts its own layerserve server and a bare echo on 127.0.0.1, builds each model once with
``layerserve.compat.v1`` (and, when TensorFlow is installed, the same model with the same weights
in ``tf.compat.v1``), and prints the median milliseconds per run, interleaved round-robin:

- ``session_run``: ``sess.run(output, {x: batch})`` through ``layerserve.compat.v1`` (one request);
- ``eager_client``: the same layers applied one by one through the eager client (one request each);
- ``ort_inprocess``: the same graph in this process's ONNX Runtime (weights fed as inputs);
- ``echo``: the batch's bytes echoed through the client's transport;
- ``tf_sess_run``: TensorFlow's ``sess.run`` in process (``pip install '.[bench-tf]'``).
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import layerserve
import layerserve.compat.v1 as ltf
from benchmarks.run import interleaved
from benchmarks.servers import echo_server, layerserve_server
from layerserve._transport import LeanHTTP
from layerserve.protocol import encode_frame

__all__ = ["main"]

MLP = ("MLP 64x784 -> 512 -> 512 -> 256 -> 10 (relu)", (64, 784), [512, 512, 256, 10], 200)
DENSE = ("Dense 64x1024 -> 1024", (64, 1024), [1024], 200)
CONVNET = ("convnet conv-BN-pool-conv-flatten-dense, 8x32x32x3", (8, 32, 32, 3), [], 100)


def _conv_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"k1": (rng.standard_normal((3, 3, 3, 16)) * 0.2).astype(np.float32),
            "k2": (rng.standard_normal((3, 3, 16, 32)) * 0.1).astype(np.float32),
            "kd": (rng.standard_normal((16 * 16 * 32, 10)) * 0.01).astype(np.float32)}


def convnet(tf: Any, x: Any, w: dict[str, np.ndarray]) -> Any:
    """The same convnet in ``tf.compat.v1`` or ``layerserve.compat.v1`` (inference mode)."""
    c = tf.constant_initializer
    h = tf.layers.conv2d(x, 16, 3, padding="same", activation=tf.nn.relu, kernel_initializer=c(w["k1"]))
    h = tf.layers.batch_normalization(h, training=False)
    h = tf.layers.max_pooling2d(h, 2, 2)
    h = tf.layers.conv2d(h, 32, 3, padding="same", activation=tf.nn.relu, kernel_initializer=c(w["k2"]))
    return tf.layers.dense(tf.layers.flatten(h), 10, kernel_initializer=c(w["kd"]))


def run_convnet(url: str, case: tuple[Any, ...]) -> dict[str, Any]:
    name, shape, _, rounds = case
    w, batch = _conv_weights(), np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    layerserve.connect(url, graph=f"bench-{uuid.uuid4().hex[:8]}")
    ltf.reset_default_graph()
    x = ltf.placeholder(ltf.float32, [None, *shape[1:]])
    y = convnet(ltf, x, w)
    sess = ltf.Session()
    columns: dict[str, Callable[[], Any]] = {"session_run": lambda: sess.run(y, {x: batch})}
    tf_run = _tf_convnet(shape, w)
    if tf_run is not None:
        columns["tf_sess_run"] = lambda: tf_run(batch)
        np.testing.assert_allclose(sess.run(y, {x: batch}), tf_run(batch), rtol=1e-3, atol=1e-4)
    return {"name": name, "ms": interleaved(columns, rounds)}


def _tf_convnet(shape: tuple[int, ...], w: dict[str, np.ndarray]) -> Callable[..., Any] | None:
    tf = _tf()
    if tf is None:
        return None
    v1 = tf.compat.v1
    graph = v1.Graph()
    with graph.as_default():
        x = v1.placeholder(v1.float32, [None, *shape[1:]])
        y = convnet(v1, x, w)
        sess = v1.Session(graph=graph)
        sess.run(v1.global_variables_initializer())
    return lambda batch: sess.run(y, {x: batch})


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs the legacy Keras
    try:
        import tensorflow as tf
    except ImportError:
        return None
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    return tf


def _weights(sizes: list[int], width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    out, fan_in = [], width
    for units in sizes:
        out.append(((rng.standard_normal((fan_in, units)) / np.sqrt(fan_in)).astype(np.float32),
                    (rng.standard_normal(units) * 0.1).astype(np.float32)))
        fan_in = units
    return out


def _activation(k: int, n: int) -> bool:
    return n > 1 and k < n - 1  # relu between layers, linear output


def build_layerserve(x_shape: tuple[int, ...], weights: list[tuple[np.ndarray, np.ndarray]]) -> Callable[..., Any]:
    ltf.reset_default_graph()
    x = ltf.placeholder(ltf.float32, [None, x_shape[1]], name="x")
    h = x
    for k, (kernel, bias) in enumerate(weights):
        h = ltf.layers.dense(h, kernel.shape[1], activation=ltf.nn.relu if _activation(k, len(weights)) else None,
                             kernel_initializer=ltf.constant_initializer(kernel),
                             bias_initializer=ltf.constant_initializer(bias))
    sess = ltf.Session()
    return lambda batch: sess.run(h, {x: batch})


def build_eager(conn: layerserve.Connection, weights: list[tuple[np.ndarray, np.ndarray]]) -> Callable[..., Any]:
    layers = []
    for k, (kernel, bias) in enumerate(weights):
        layer = conn.layers.Dense(kernel.shape[1], activation="relu" if _activation(k, len(weights)) else None)
        layer.build([None, kernel.shape[0]])
        layer.set_weights([kernel, bias])
        layers.append(layer)

    def run(batch: np.ndarray) -> Any:
        for layer in layers:
            batch = layer(batch)
        return batch
    return run


def build_ort(weights: list[tuple[np.ndarray, np.ndarray]]) -> Callable[..., Any]:
    nodes: list[Any] = []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", weights[0][0].shape[0]])]
    feeds: dict[str, np.ndarray] = {}
    h = "x"
    for k, (kernel, bias) in enumerate(weights):
        inputs += [helper.make_tensor_value_info(f"k{k}", TensorProto.FLOAT, list(kernel.shape)),
                   helper.make_tensor_value_info(f"b{k}", TensorProto.FLOAT, list(bias.shape))]
        feeds |= {f"k{k}": kernel, f"b{k}": bias}
        nodes += [helper.make_node("MatMul", [h, f"k{k}"], [f"m{k}"]),
                  helper.make_node("Add", [f"m{k}", f"b{k}"], [f"a{k}"])]
        h = f"a{k}"
        if _activation(k, len(weights)):
            nodes.append(helper.make_node("Relu", [h], [f"r{k}"]))
            h = f"r{k}"
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(h, TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"x": batch, **feeds})


def build_tf(weights: list[tuple[np.ndarray, np.ndarray]]) -> Callable[..., Any] | None:
    tf = _tf()
    if tf is None:
        return None
    v1 = tf.compat.v1
    graph = v1.Graph()
    with graph.as_default():
        x = v1.placeholder(v1.float32, [None, weights[0][0].shape[0]])
        h = x
        for k, (kernel, bias) in enumerate(weights):
            h = v1.layers.dense(h, kernel.shape[1], activation=v1.nn.relu if _activation(k, len(weights)) else None,
                                kernel_initializer=v1.constant_initializer(kernel),
                                bias_initializer=v1.constant_initializer(bias))
        sess = v1.Session(graph=graph)
        sess.run(v1.global_variables_initializer())
    return lambda batch: sess.run(h, {x: batch})


def run_case(url: str, echo_url: str, case: tuple[Any, ...]) -> dict[str, Any]:
    name, shape, sizes, rounds = case
    weights = _weights(sizes, shape[1])
    batch = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    layerserve.connect(url, graph=f"bench-{uuid.uuid4().hex[:8]}")
    eager_conn = layerserve.Connection(url, graph=f"eager-{uuid.uuid4().hex[:8]}")
    http = LeanHTTP(echo_url, {}, 60.0)
    out_frame = encode_frame({}, [np.zeros((shape[0], sizes[-1]), np.float32)])
    columns: dict[str, Callable[[], Any]] = {}
    session_run = build_layerserve(shape, weights)
    columns["session_run"] = lambda: session_run(batch)
    eager = build_eager(eager_conn, weights)
    columns["eager_client"] = lambda: eager(batch)
    in_process = build_ort(weights)
    columns["ort_inprocess"] = lambda: in_process(batch)
    in_frame = encode_frame({"feeds": ["x:0"], "fetches": ["dense/BiasAdd:0"]}, [batch])
    columns["echo"] = lambda: (http.request("POST", "/echo", {"content-type": "application/octet-stream"}, in_frame),
                               http.request("POST", "/echo", {"content-type": "application/octet-stream"}, out_frame))
    tf_run = build_tf(weights)
    if tf_run is not None:
        columns["tf_sess_run"] = lambda: tf_run(batch)
    np.testing.assert_allclose(session_run(batch), in_process(batch)[0], rtol=1e-4, atol=1e-4)
    return {"name": name, "ms": interleaved(columns, rounds)}


def print_results(results: list[dict[str, Any]]) -> None:
    cols = ["session_run", "eager_client", "ort_inprocess", "echo", "tf_sess_run"]
    print(f"{'median ms per run':48s}" + "".join(f"{c:>15s}" for c in cols))
    for r in results:
        print(f"{r['name']:48s}" + "".join(f"{r['ms'][c]:15.3f}" if c in r["ms"] else f"{'-':>15s}" for c in cols))
    print()
    for r in results:
        ms = r["ms"]
        if "ort_inprocess" not in ms:
            if "tf_sess_run" in ms:
                print(f"{r['name']}: session_run / TF sess.run = {ms['session_run'] / ms['tf_sess_run']:.2f}")
            continue
        floor = ms["ort_inprocess"] + ms["echo"] / 2  # echo column: the feed's and the answer's bytes, one each way
        line = f"{r['name']}: session_run / (ORT in-process + echo of its bytes) = {ms['session_run'] / floor:.2f}"
        line += f"; / eager client = {ms['session_run'] / ms['eager_client']:.2f}"
        if "tf_sess_run" in ms:
            line += f"; / TF sess.run = {ms['session_run'] / ms['tf_sess_run']:.2f}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="runs per column (default per case)")
    args = parser.parse_args(argv)
    srv, echo = layerserve_server(), echo_server()
    try:
        cases = [case if args.rounds is None else (*case[:3], args.rounds) for case in (MLP, DENSE)]
        results = [run_case(srv.url, echo.url, case) for case in cases]
        results.append(run_convnet(srv.url, CONVNET if args.rounds is None else (*CONVNET[:3], args.rounds)))
        print_results(results)
    finally:
        srv.stop()
        echo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
