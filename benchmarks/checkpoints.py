"""Seconds per checkpoint operation, by store, for a graph of a given size.

    python -m benchmarks.checkpoints [--mb 16] [--repeat 5] [--stores filesystem,redis]

For each store (the state directory; Redis: a redis-server of its own on 127.0.0.1, no
persistence) it starts a server, builds a Dense layer whose kernel holds ``--mb`` MB of
float32, and times ``--repeat`` times each: a snapshot (``POST .../checkpoints``), a restore
(``:restore``, one commit of every variable), a download of both files, an upload of them, the
first apply pinned to a new checkpoint (reads and decodes it) and a later one (cached), beside a
live apply. Prints a markdown table of the median (lowest-highest) seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

import layerserve
from tests.redis_server import RedisProcess
from tests.server import ServerProcess

__all__ = ["main"]


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def _row(name: str, times: list[float]) -> str:
    return f"| {name} | {statistics.median(times):.4f} ({min(times):.4f}-{max(times):.4f}) |"


def _measure(url: str, mb: float, repeat: int, tmp: Path) -> list[str]:
    width = max(1, int((mb * 2**20 / 4) ** 0.5))
    conn = layerserve.Connection(url, graph="bench")
    layer = conn.layers.Dense(width, name="big")
    x = np.ones((1, width), np.float32)
    layer.apply(x)
    counter = iter(range(10**6))
    rows = [_row("snapshot", _timed(lambda: conn.create_checkpoint(f"s{next(counter)}"), repeat)),
            _row("restore", _timed(lambda: conn.restore_checkpoint("s0"), repeat)),
            _row("download (both files)", _timed(lambda: conn.download_checkpoint("s0", tmp / "dl"), repeat)),
            _row("upload (tar of both)", _timed(lambda: conn.upload_checkpoint(f"u{next(counter)}", tmp / "dl"),
                                                repeat))]
    body = {"inputs": [{"dtype": "float32", "shape": [1, width], "data": x.ravel().tolist()}]}
    apply_url = f"{url}/v1/graphs/bench/layers/big/apply"
    with httpx.Client(timeout=120) as client:
        def pinned_first() -> None:
            name = f"p{next(counter)}"
            conn.create_checkpoint(name)
            started = time.perf_counter()
            client.post(apply_url, json={**body, "checkpoint": name}).raise_for_status()
            first.append(time.perf_counter() - started)
        first: list[float] = []
        _timed(pinned_first, repeat)
        rows.append(_row("first pinned apply (reads the checkpoint)", first))
        rows.append(_row("pinned apply (cached)", _timed(
            lambda: client.post(apply_url, json={**body, "checkpoint": "s0"}).raise_for_status(), repeat)))
        rows.append(_row("live apply", _timed(lambda: client.post(apply_url, json=body).raise_for_status(), repeat)))
    conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=16.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stores", default="filesystem,redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for store in args.stores.split(","):
            redis = RedisProcess(tmp / "redis").start() if store == "redis" else None
            extra = ["--store", redis.url] if redis is not None else []
            server = ServerProcess(tmp / f"state-{store}", "--max-tensor-elements", str(2**26), *extra).start()
            try:
                print(f"\n{store}, {args.mb} MB of variables\n\n| operation | seconds: median (min-max) |\n| --- | --- |")
                print("\n".join(_measure(server.url, args.mb, args.repeat, tmp)))
            finally:
                server.stop()
                if redis is not None:
                    redis.stop()


if __name__ == "__main__":
    main()
