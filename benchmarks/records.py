"""Applies per second of a layer that records a loss on every apply, by how many records it holds.

    python -m benchmarks.records [--counts 10,500,1000] [--applies 300] [--repeat 3] [--stores filesystem,redis]

For each store (the state directory; Redis: a redis-server of its own on 127.0.0.1, no
persistence) and each record count N it starts a server with ``--max-records-per-layer N``,
applies a Dense(64) with an activity regularizer N times (untimed: the layer then holds N loss
records, and every further apply evicts the oldest), then times ``--applies`` sequential applies
of distinct 4x64 inputs from one client, ``--repeat`` times. Each apply commits its new record,
so what this measures is the store's cost per recorded apply. Prints a markdown table of the
median (and the lowest and highest) applies per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import client
from tests.redis_server import RedisProcess
from tests.server import ServerProcess

__all__ = ["main"]


@contextmanager
def _server(store: str, tmp: Path, cap: int) -> Iterator[str]:
    redis = RedisProcess(tmp / f"redis-{cap}").start() if store == "redis" else None
    extra = ["--store", redis.url] if redis is not None else []
    server = ServerProcess(tmp / f"state-{store}-{cap}", "--max-records-per-layer", str(cap), *extra).start()
    try:
        yield server.url
    finally:
        server.stop()
        if redis is not None:
            redis.stop()


def _rates(url: str, count: int, applies: int, repeat: int) -> list[float]:
    conn = client.connect(url, graph="records")
    layer = conn.layers.Dense(64, activity_regularizer=client.regularizers.l2(1e-3), name="regularized")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,500,1000")
    parser.add_argument("--applies", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="filesystem,redis")
    args = parser.parse_args()
    print("| store | records held | applies/s, median | lowest | highest |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores.split(","):
            for count in (int(c) for c in args.counts.split(",")):
                with _server(store, Path(tmp), count) as url:
                    rates = _rates(url, count, args.applies, args.repeat)
                print(f"| {store} | {count} | {statistics.median(rates):.0f} | {min(rates):.0f} | {max(rates):.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
