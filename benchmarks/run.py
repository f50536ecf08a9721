"""``python -m benchmarks.run`` (``make bench``): layerserve against its floors, in one run.

Starts its own layerserve server and a bare FastAPI echo on 127.0.0.1, then prints:
1. latency per apply (median ms) for in-process ONNX Runtime (weights fed as inputs, as the
   server runs them, and baked in as initializers), the echo of the same bytes, the client
   (binary and JSON), OIP v2 binary through tritonclient, and TensorFlow eager if installed;
2. the target ratios, each from figures of this run;
3. throughput of 1-row requests (``hey``, a Go load generator) with batching off and on.
Calls are interleaved round-robin so background load hits every column alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

import layerserve
from benchmarks.servers import Process, echo_server, layerserve_server
from layerserve._core import layer_path
from layerserve._transport import LeanHTTP
from layerserve.protocol import FRAME_CONTENT_TYPE, encode_frame, json_dumps, tensor_to_json
from layerserve.server.core.layer import short_name
from layerserve.server.layers import kind_for
from layerserve.server.layers.base import Signature, VariableSpec
from layerserve.server.runtime.compiler import INPUT, compile_layer

__all__ = ["main"]

CASES = [  # name, class, config, input shape, rounds
    ("Dense 1024->1024, batch 1", "Dense", {"units": 1024}, (1, 1024), 300),
    ("Dense 1024->1024, batch 64", "Dense", {"units": 1024}, (64, 1024), 200),
    ("Conv2D 3x3 64->64, 8x56x56x64", "Conv2D", {"filters": 64, "kernel_size": 3, "padding": "same"},
     (8, 56, 56, 64), 12),
    ("Dense 16->16, batch 1 (tiny)", "Dense", {"units": 16}, (1, 16), 400),
]


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def ort_with_inputs(layer: layerserve.layers.Layer, x: np.ndarray) -> Callable[[], Any]:
    """The server's graph (variables as graph inputs), run in this process."""
    desc = layer._describe()
    kind = kind_for(desc["class"]).from_kwargs({k: v for k, v in desc["config"].items()
                                                if k not in ("name", "trainable", "dtype")})
    names = [v["name"] for v in desc["variables"]]
    weights = dict(zip(names, layer.get_weights(), strict=True))
    specs = tuple(VariableSpec(short_name(n), tuple(weights[n].shape), str(weights[n].dtype)) for n in names)
    model, outputs = compile_layer(kind, Signature(x.dtype.name, x.shape, training=False, variables=specs))
    session = ort.InferenceSession(model.SerializeToString(), _session_options(), providers=["CPUExecutionProvider"])
    feeds = {**kind.runtime_feeds({short_name(n): v for n, v in weights.items()}), INPUT: x}
    return lambda: session.run(outputs[:1], feeds)


def ort_baked(conn: layerserve.Connection, layer: layerserve.layers.Layer, x: np.ndarray) -> tuple[Callable[[], Any], float]:
    """The exported model (weights baked in as initializers), and how long its session took to make."""
    data = httpx.get(conn.url + layer_path(conn.graph, layer.id, "/onnx"), timeout=60).content
    started = time.perf_counter()
    session = ort.InferenceSession(data, _session_options(), providers=["CPUExecutionProvider"])
    made = time.perf_counter() - started
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: x})), made


def tf_eager(layer: layerserve.layers.Layer, cls: str, config: dict[str, Any], x: np.ndarray) -> Callable[[], Any] | None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    try:
        tf_layer = getattr(tf.compat.v1.layers, cls)(**config)
    except AttributeError:  # TF with Keras 3 has no tf.compat.v1.layers: the same Keras layer
        tf_layer = getattr(tf.keras.layers, cls)(**config)
    tf_layer(x)
    tf_layer.set_weights(layer.get_weights())
    return lambda: tf_layer(x).numpy()


def interleaved(columns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median milliseconds per column, one call of each per round. The order rotates from
    round to round: a column that leaves threads spinning (ONNX Runtime's, TensorFlow's)
    slows whichever call comes next, so each column comes next after each other alike."""
    for fn in columns.values():
        fn()
        fn()
    samples: dict[str, list[float]] = {k: [] for k in columns}
    order = list(columns.items())
    for round_ in range(rounds):
        shift = round_ % len(order)
        for name, fn in order[shift:] + order[:shift]:
            started = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - started) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def triton_infer(url: str, model: str, x: np.ndarray) -> Callable[[], Any]:
    import tritonclient.http as triton

    tc = triton.InferenceServerClient(url.removeprefix("http://"))
    datatype = {"float16": "FP16", "float32": "FP32", "float64": "FP64"}[x.dtype.name]

    def call() -> Any:
        inp = triton.InferInput("input_0", list(x.shape), datatype)
        inp.set_data_from_numpy(x, binary_data=True)
        return tc.infer(model, [inp], outputs=[triton.InferRequestedOutput("output_0", binary_data=True)])

    return call


def latency_case(srv: Process, echo: Process, case: tuple[Any, ...], conns: dict[str, Any]) -> dict[str, Any] | None:
    name, cls, config, shape, rounds = case
    conn, json_conn, http = conns["binary"], conns["json"], conns["http"]
    created = httpx.post(f"{conn.url}/v1/graphs/{conn.graph}/layers", json={"class": cls, "config": config}, timeout=60)
    if created.status_code != 201:
        return {"name": name, "skipped": created.json()["error"]["message"]}
    layer = layerserve.layers.Layer._from_description(conn, created.json())
    as_json = layerserve.layers.Layer._from_description(json_conn, created.json())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer(x)
    frame = encode_frame({"training": None}, [x])
    columns: dict[str, Callable[[], Any]] = {
        "ort_inputs": ort_with_inputs(layer, x),
        "echo": lambda: http.request("POST", "/echo", {"content-type": "application/octet-stream"}, frame),
        "apply_binary": lambda: layer(x),
        "apply_json": lambda: as_json(x),
        "oip_binary": triton_infer(srv.url, f"{conn.graph}.{layer.id}", x),
        "get": lambda: conn.call("GET", "/healthz"),
    }
    columns["ort_baked"], baked_session_s = ort_baked(conn, layer, x)
    tf_fn = tf_eager(layer, cls, config, x)
    if tf_fn is not None:
        columns["tf_eager"] = tf_fn
    medians = interleaved(columns, rounds)
    json_body = json_dumps({"inputs": [tensor_to_json(x)], "training": None})
    return {"name": name, "ms": medians, "frame_bytes": len(frame), "json_bytes": len(json_body),
            "tensor_bytes": x.nbytes, "baked_session_ms": baked_session_s * 1e3}


def hey(url: str, body: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    """One ``hey`` run; its per-request CSV gives throughput and latency percentiles."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
        handle.write(body)
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", FRAME_CONTENT_TYPE,
                          "-H", f"Accept: {FRAME_CONTENT_TYPE}", "-D", handle.name, "-o", "csv", url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    rows = [line.split(",") for line in out.splitlines()[1:] if line.strip()]
    latency = np.array([float(r[0]) for r in rows]) * 1e3
    ends = [float(r[7]) + float(r[0]) for r in rows]
    return {"rps": len(rows) / max(ends), "p50_ms": float(np.percentile(latency, 50)),
            "p99_ms": float(np.percentile(latency, 99)), "non_200": sum(r[6] != "200" for r in rows)}


def throughput(conn: layerserve.Connection, seconds: float) -> list[dict[str, Any]]:
    if shutil.which("hey") is None:
        return [{"skipped": "hey is not installed (apt-get install hey)"}]
    body = {"class": "Dense", "config": {"units": 4096}}
    layer = layerserve.layers.Layer._from_description(conn, conn.call("POST", f"/v1/graphs/{conn.graph}/layers", body).body)
    x = np.random.default_rng(1).standard_normal((1, 4096)).astype(np.float32)
    layer(x)
    url = f"{conn.url}{layer_path(conn.graph, layer.id, '/apply')}"
    rows = []
    for concurrency in (1, 8, 32):
        for enabled in (False, True):
            conn.call("PATCH", layer_path(conn.graph, layer.id), {"batching": {"enabled": enabled}})
            rows.append({"c": concurrency, "batching": enabled,
                         **hey(url, encode_frame({"training": None}, [x]), concurrency, seconds)})
    return rows


def _fmt(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def print_latency(results: list[dict[str, Any]]) -> None:
    cols = ["ort_inputs", "ort_baked", "tf_eager", "echo", "apply_binary", "apply_json", "oip_binary", "get"]
    print("\n## Latency per call, median ms (same run, interleaved)\n")
    print("| case | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for r in results:
        if "skipped" in r:
            print(f"| {r['name']} | skipped: {r['skipped']} |")
            continue
        print(f"| {r['name']} | " + " | ".join(_fmt(r["ms"][c]) if c in r["ms"] else "-" for c in cols) + " |")


def print_targets(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    by = {r["name"]: r for r in results if "skipped" not in r}
    print("\n## Targets (ratios from this run)\n\n| target | figure | limit | met |\n|---|---|---|---|")

    def line(what: str, value: float | None, limit: float, *, below: bool = True) -> None:
        if value is None:
            print(f"| {what} | n/a | {limit} | - |")
            return
        met = value <= limit if below else value >= limit
        print(f"| {what} | {value:.2f} | {'<=' if below else '>='} {limit} | {'yes' if met else 'NO'} |")

    b64, b1, tiny = (by.get(k) for k in ("Dense 1024->1024, batch 64", "Dense 1024->1024, batch 1",
                                          "Dense 16->16, batch 1 (tiny)"))
    if b64:
        ms = b64["ms"]
        line("64x1024 apply (binary) / (ORT in-process + echo)", ms["apply_binary"] / (ms["ort_inputs"] + ms["echo"]), 1.3)
        line("64x1024 apply (binary) / TF eager", ms["apply_binary"] / ms["tf_eager"] if "tf_eager" in ms else None, 1.0)
        line("64x1024 JSON / binary, time", ms["apply_json"] / ms["apply_binary"], 3.0)
        line("64x1024 JSON / binary, request bytes", b64["json_bytes"] / b64["frame_bytes"], 3.0)
        line("64x1024 binary frame bytes - tensor bytes", b64["frame_bytes"] - b64["tensor_bytes"], 256)
    if b1:
        line("1x1024 apply (binary) / echo of the same bytes", b1["ms"]["apply_binary"] / b1["ms"]["echo"], 1.3)
    if tiny:
        line("1x16 apply / trivial GET, same client", tiny["ms"]["apply_binary"] / tiny["ms"]["get"], 1.25)
    table = {(r["c"], r["batching"]): r for r in rows if "c" in r}
    if (32, True) in table:
        on, off = table[(32, True)], table[(32, False)]
        line("c=32 throughput, batching on / off", on["rps"] / off["rps"], 3.0, below=False)
        line("c=32 p99, batching on / off", on["p99_ms"] / off["p99_ms"], 1.0)
        line("c=1 p50 latency, batching on / off", table[(1, True)]["p50_ms"] / table[(1, False)]["p50_ms"], 1.3)


def print_throughput(rows: list[dict[str, Any]]) -> None:
    print("\n## Throughput, 1-row requests to Dense 4096->4096 (hey, binary frames)\n")
    if rows and "skipped" in rows[0]:
        print(rows[0]["skipped"])
        return
    print("| concurrency | batching | req/s | p50 ms | p99 ms | non-200 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['c']} | {'on' if r['batching'] else 'off'} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['non_200']} |")


def print_extras(results: list[dict[str, Any]]) -> None:
    print("\n## Weights as graph inputs vs baked initializers\n")
    print("| case | ORT, inputs ms | ORT, baked ms | new baked session on a weight change, ms |\n|---|---|---|---|")
    for r in results:
        if "skipped" not in r:
            print(f"| {r['name']} | {_fmt(r['ms']['ort_inputs'])} | {_fmt(r['ms']['ort_baked'])} | "
                  f"{r['baked_session_ms']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each throughput run")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the rounds per latency case")
    args = parser.parse_args(argv)
    srv, echo = layerserve_server("--max-json-bytes", str(64 << 20)), echo_server()  # the Conv2D JSON case is 17.5 MB
    # The echo goes through the client's own HTTP layer, so that apply / echo compares servers.
    conns = {"binary": layerserve.Connection(srv.url, graph="bench"),
             "json": layerserve.Connection(srv.url, graph="bench", binary=False), "http": LeanHTTP(echo.url, {}, 60.0)}
    try:
        print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, server {srv.url}")
        cases = [(*c[:4], max(3, int(c[4] * args.scale))) for c in CASES]
        results = [r for case in cases if (r := latency_case(srv, echo, case, conns)) is not None]
        rows = [] if args.no_throughput else throughput(conns["binary"], args.seconds)
        print_latency(results)
        print_extras(results)
        print_throughput(rows)
        print_targets(results, rows)
    finally:
        for c in conns.values():
            c.close()
        srv.stop()
        echo.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
