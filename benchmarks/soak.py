"""Memory soak: many applies against one server; the server's RSS must level off.

    python -m benchmarks.soak [--applies 100000] [--regularized-every 10] [--clients 2]

Starts its own server (``--max-records-per-layer`` at its default, 1000), then applies a Dense
layer ``--applies`` times with a different input each time. Every ``--regularized-every``-th
apply goes to a second Dense layer with an activity regularizer instead, so that layer keeps
one loss record per distinct input: past 1000 inputs the oldest are evicted, and memory must
not grow with the number of applies. Prints the server's RSS at start, after warm-up, every
tenth of the run, and at the end, plus the record count.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import layerserve
from tests.server import ServerProcess

__all__ = ["main", "rss_kib"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def _worker(url: str, graph: str, ids: range, every: int, done: list[int]) -> None:
    conn = layerserve.Connection(url, graph=graph)
    plain, regularized = conn.list_layers()  # in creation order
    x = np.random.default_rng(ids.start).standard_normal((4, 64)).astype(np.float32)
    for i in ids:
        x[0, 0] = i  # a distinct input (and input reference) per apply
        (regularized if every and i % every == 0 else plain).apply(x)
        done[0] += 1
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applies", type=int, default=100_000)
    parser.add_argument("--regularized-every", type=int, default=10)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "state").start()
        assert server.proc is not None
        pid = server.proc.pid
        try:
            _run(server, pid, args)
        finally:
            server.stop()


def _run(server: ServerProcess, pid: int, args: argparse.Namespace) -> None:
    conn = layerserve.connect(server.url, graph="soak")
    conn.layers.Dense(64, activation="relu", name="plain").build((None, 64))
    regularized = conn.layers.Dense(64, activity_regularizer=layerserve.regularizers.l2(1e-3), name="regularized")
    regularized.build((None, 64))
    print(f"RSS at start:            {rss_kib(pid) / 1024:8.1f} MiB")
    done = [0]
    _apply_all(server.url, range(10**9, 10**9 + 1000), args, done)  # warm-up: sessions compiled, pools filled
    start_rss, t0 = rss_kib(pid), time.perf_counter()
    print(f"RSS after 1000 warm-up:  {start_rss / 1024:8.1f} MiB")
    step = max(args.applies // 10, 1)
    for first in range(0, args.applies, step):
        _apply_all(server.url, range(first, min(first + step, args.applies)), args, done)
        print(f"  {first + step:>7} applies: RSS {rss_kib(pid) / 1024:8.1f} MiB  "
              f"({(time.perf_counter() - t0):6.1f} s)", flush=True)
    end_rss = rss_kib(pid)
    records = len(regularized.losses)
    print(f"RSS after {args.applies} applies: {end_rss / 1024:8.1f} MiB "
          f"(growth {(end_rss - start_rss) / 1024:+.1f} MiB); loss records kept: {records}")
    conn.close()


def _apply_all(url: str, ids: range, args: argparse.Namespace, done: list[int]) -> None:
    chunks = [ids[k::args.clients] for k in range(args.clients)]
    threads = [threading.Thread(target=_worker, args=(url, "soak", chunk, args.regularized_every, done))
               for chunk in chunks if len(chunk)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if done[0] < ids.stop - ids.start:
        raise SystemExit("a client failed; see its traceback above")
    done[0] = 0


if __name__ == "__main__":
    main()
