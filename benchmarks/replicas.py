"""Throughput of a Dense apply on 1, 2 and 3 replicas sharing one Redis, against one process
on the state directory, and the cost of the per-request version check.

    python -m benchmarks.replicas [--requests 3000] [--concurrency 8] [--replicas 1,2,3] [--repeat 3]

Starts its own redis-server and servers on 127.0.0.1 and drives them with ``hey`` (Debian
package ``hey``), one ``hey`` per replica so that no balancer sits in between; the load is
bounded by ``--requests``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import layerserve
from tests.redis_server import RedisProcess
from tests.server import ServerProcess

__all__ = ["main"]

GRAPH = "bench"


def _body(path: Path) -> Path:
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    path.write_text(json.dumps({"inputs": [{"dtype": "float32", "shape": [8, 64], "data": x.ravel().tolist()}]}))
    return path


def _hey(urls: list[str], body: Path, requests: int, concurrency: int) -> float:
    """Requests per second summed over one ``hey`` per URL, run at once."""
    share_n, share_c = max(1, requests // len(urls)), max(1, concurrency // len(urls))
    procs = [subprocess.Popen(["hey", "-n", str(share_n), "-c", str(share_c), "-m", "POST", "-T",
                               "application/json", "-D", str(body), url], stdout=subprocess.PIPE, text=True)
             for url in urls]
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        status = re.search(r"\[(\d+)\]\s+(\d+) responses", out)
        if match is None or status is None or status.group(1) != "200":
            raise RuntimeError(f"hey failed:\n{out}")
        total += float(match.group(1))
    return total


def _setup(url: str) -> str:
    conn = layerserve.Connection(url, graph=GRAPH)
    layer = conn.layers.Dense(64, activation="relu")
    layer(np.zeros((8, 64), np.float32))
    conn.close()
    return f"/v1/graphs/{GRAPH}/layers/{layer.name}/apply"


def _version_check_us(url: str, count: int = 5000) -> float:
    from layerserve.server.store.redis import RedisStore

    store = RedisStore(url)
    store.head_revision(GRAPH)
    start = time.perf_counter()
    for _ in range(count):
        store.head_revision(GRAPH)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed / count * 1e6


def _measure(servers: list[ServerProcess], body: Path, args: argparse.Namespace) -> float:
    for server in servers:
        server.start()
    try:
        path = _setup(servers[0].url)
        urls = [server.url + path for server in servers]
        _hey(urls, body, max(200, args.requests // 10), args.concurrency)  # warm sessions and caches
        return statistics.median(_hey(urls, body, args.requests, args.concurrency) for _ in range(args.repeat))
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setup; the median is reported")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("needs `hey` (apt-get install -y hey)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    body = _body(tmp / "body.json")
    rows = [("1 process, state directory", _measure([ServerProcess(tmp / "fs")], body, args))]
    for n in (int(v) for v in args.replicas.split(",")):
        redis = RedisProcess(tmp / f"redis{n}").start()
        try:
            servers = [ServerProcess(tmp / f"r{n}-{i}", "--store", redis.url) for i in range(n)]
            rows.append((f"{n} replica(s), Redis", _measure(servers, body, args)))
            check_us = _version_check_us(redis.url)
        finally:
            redis.stop()
    print(f"Dense(64, relu) apply on 8x64 float32 (JSON), {args.requests} requests, {args.concurrency} connections, "
          f"median of {args.repeat}\n")
    print("| setup | requests/s |\n| --- | --- |")
    for name, rps in rows:
        print(f"| {name} | {rps:.0f} |")
    print(f"\nversion check (one HGET round trip, in process): {check_us:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
