"""``python -m benchmarks.ui_figures``: what the dashboard's live figures cost.

1. The traffic middleware on the request path: an apply-shaped ASGI request through
   ``TrafficRecorder`` around a trivial app, against the same app bare (median ns per request).
2. ``LayerTraffic.figures`` for a graph whose layers all have full rings (4,096 requests and
   4,096 batched runs each): the work one refresh of the page asks of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from layerserve.server.api.traffic import TrafficRecorder
from layerserve.server.traffic import RING, LayerTraffic


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _noop_send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _per_request_ns(app: Any, path: str, n: int) -> float:
    scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    samples = []
    for _ in range(7):
        start = time.perf_counter_ns()
        for _ in range(n):
            await app(scope, _receive, _noop_send)
        samples.append((time.perf_counter_ns() - start) / n)
    return statistics.median(samples)


def _figures_ms(layers: int, repeat: int) -> float:
    traffic = LayerTraffic()
    for i in range(layers):
        for _ in range(RING):
            traffic.record_request("g", f"layer_{i}", 200, 0.001)
            traffic.record_run(f"g/~{i}", 4, 4)
    ids = {f"layer_{i}": f"~{i}" for i in range(layers)} | {f"~{i}": f"~{i}" for i in range(layers)}
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        figures = traffic.figures("g", 10.0, ids.get)
        for f in figures.values():
            f.to_json(10.0)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--layers", default="10,100,1000")
    args = parser.parse_args()
    recorder = TrafficRecorder(_app, LayerTraffic())
    path = "/v1/graphs/g/layers/dense/apply"
    bare = asyncio.run(_per_request_ns(_app, path, args.requests))
    wrapped = asyncio.run(_per_request_ns(recorder, path, args.requests))
    other = asyncio.run(_per_request_ns(recorder, "/v1/graphs/g/layers/dense", args.requests))
    print("| request through | median ns per request |\n|---|---|")
    print(f"| bare app | {bare:.0f} |\n| TrafficRecorder, an apply | {wrapped:.0f} |")
    print(f"| TrafficRecorder, another route | {other:.0f} |")
    print("\n| layers with full rings | figures of the last 10 s, median ms |\n|---|---|")
    for n in (int(x) for x in args.layers.split(",")):
        print(f"| {n} | {_figures_ms(n, 5):.1f} |")


if __name__ == "__main__":
    main()
