"""Applies per second of a layer that records a loss on every apply, by how many records it holds;
and commits per second next to a custom layer with a large model.

    python -m benchmarks.records [--counts 10,500,1000] [--applies 300] [--repeat 3] [--stores filesystem,redis]
                                 [--model-mb 4]

For each store (the state directory; Redis: a redis-server of its own on 127.0.0.1, no
persistence) and each record count N it starts a server with ``--max-records-per-layer N``,
applies a Dense(64) with an activity regularizer N times (untimed: the layer then holds N loss
records, and every further apply evicts the oldest), then times ``--applies`` sequential applies
of distinct 4x64 inputs from one client, ``--repeat`` times. Each apply commits its new record,
so what this measures is the store's cost per recorded apply. Then, on a new server per store,
it creates a custom layer whose ONNX model has ``--model-mb`` MB (0: skip) beside a Dense(2),
and times ``--applies`` ``set_weights`` of the Dense: each is a commit of the graph that holds
the model. Prints markdown tables of the median (and the lowest and highest) rates.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

import layerserve
from benchmarks.servers import store_server
from tests.test_custom_layers import _config, _model_bytes

__all__ = ["main"]


def _rates(url: str, count: int, applies: int, repeat: int) -> list[float]:
    conn = layerserve.connect(url, graph="records")
    layer = conn.layers.Dense(64, activity_regularizer=layerserve.regularizers.l2(1e-3), name="regularized")
    x = np.random.default_rng(count).standard_normal((4, 64)).astype(np.float32)
    for i in range(count):  # fill up to the cap
        x[0, 0] = i
        layer.apply(x)
    rates, step = [], count
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(step, step + applies):
            x[0, 0] = i  # a distinct input, so a distinct record, every time
            layer.apply(x)
        rates.append(applies / (time.perf_counter() - start))
        step += applies
    held = len(layer.losses)
    conn.close()
    if held != count:
        raise SystemExit(f"the layer holds {held} records, expected {count}")
    return rates


def _commit_rates(url: str, model_mb: float, commits: int, repeat: int) -> list[float]:
    conn = layerserve.connect(url, graph="model")
    raw = _model_bytes(pad=int(model_mb * 1e6) // 8)  # int64 zeros: 8 bytes each
    response = httpx.post(f"{url}/v1/graphs/model/layers", json={"class": "Layer", "config": _config(raw)}, timeout=60)
    if response.status_code != 201:
        raise SystemExit(f"could not create the custom layer: {response.text[:500]}")
    dense = conn.layers.Dense(2, name="small")
    dense.build((None, 3))
    weights = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(commits):
            dense.set_weights(weights)
        rates.append(commits / (time.perf_counter() - start))
    conn.close()
    return rates


def _row(*cells: object, rates: list[float]) -> str:
    return "| " + " | ".join(map(str, cells)) + f" | {statistics.median(rates):.0f} | {min(rates):.0f} | {max(rates):.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,500,1000")
    parser.add_argument("--applies", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="filesystem,redis")
    parser.add_argument("--model-mb", type=float, default=4.0)
    args = parser.parse_args()
    stores, counts = args.stores.split(","), [int(c) for c in args.counts.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        if counts:
            print("| store | records held | applies/s, median | lowest | highest |\n|---|---|---|---|---|")
        for store in stores:
            for count in counts:
                with store_server(store, Path(tmp), str(count), "--max-records-per-layer", str(count)) as url:
                    print(_row(store, count, rates=_rates(url, count, args.applies, args.repeat)), flush=True)
        if args.model_mb:
            print("\n| store | custom model | set_weights/s, median | lowest | highest |\n|---|---|---|---|---|")
        for store in stores if args.model_mb else ():
            with store_server(store, Path(tmp), "model", "--max-records-per-layer", "1000") as url:
                rates = _commit_rates(url, args.model_mb, args.applies, args.repeat)
            print(_row(store, f"{args.model_mb:g} MB", rates=rates), flush=True)


if __name__ == "__main__":
    main()
