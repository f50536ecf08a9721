"""What one write costs, by how many layers its graph holds: a commit must cost what it changes,
not what the graph holds.

    python -m benchmarks.commits [--sizes 10,1000] [--writes 200] [--stores filesystem,redis]

For each store and size N it starts a server, fills graph ``big`` with N built Dense(4) layers
(timing the last creates), then adds a Dense(4) with an activity regularizer and times, one
client, ``--writes`` sequential recorded applies of it (each commits one new record) and as many
``set_weights`` of it (each commits two small values). Prints the median milliseconds per write
(with the lowest and highest of three equal parts of the run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import layerserve
from benchmarks.servers import store_server

__all__ = ["main"]


def _timed(write: Callable[[int], object], count: int) -> list[float]:
    """Milliseconds of each of ``count`` calls of ``write(i)``."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        write(i)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _measure(url: str, size: int, writes: int) -> dict[str, list[float]]:
    conn = layerserve.connect(url, graph="big")
    x = np.ones((1, 4), np.float32)
    tail = min(50, size)

    def create(_: int) -> None:
        conn.layers.Dense(4).build((None, 4))

    _timed(create, size - tail)
    created = _timed(create, tail)
    probe = conn.layers.Dense(4, activity_regularizer=layerserve.regularizers.l2(1e-3), name="probe")
    probe.build((None, 4))
    weights = probe.get_weights()

    def recorded_apply(i: int) -> None:
        x[0, 0] = i  # a distinct input: a new record
        probe.apply(x)

    applies = _timed(recorded_apply, writes)
    sets = _timed(lambda _: probe.set_weights(weights), writes)
    conn.close()
    return {"create": created, "recorded apply": applies, "set_weights": sets}


def _cell(times: list[float]) -> str:
    thirds = [statistics.median(times[k::3]) for k in range(3)]
    return f"{statistics.median(times):.2f} ({min(thirds):.2f}-{max(thirds):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--stores", default="filesystem,redis")
    args = parser.parse_args()
    print("| store | layers | create ms | recorded apply ms | set_weights ms |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores.split(","):
            for size in (int(s) for s in args.sizes.split(",") if s):
                with store_server(store, Path(tmp), str(size), "--max-layers-per-graph", str(size + 10)) as url:
                    ms = _measure(url, size, args.writes)
                print(f"| {store} | {size} | {_cell(ms['create'])} | {_cell(ms['recorded apply'])} | "
                      f"{_cell(ms['set_weights'])} |", flush=True)


if __name__ == "__main__":
    main()
