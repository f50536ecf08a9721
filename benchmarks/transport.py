"""``python -m benchmarks.transport``: the sync client's own HTTP/1.1 transport (``LeanHTTP``)
against urllib3's connection pool, behind the same ``Connection``, on one server.

Two cases: a tiny apply (Dense 4->4, one row) and a 64x1024 apply (Dense 1024->1024). Calls
are interleaved round-robin, the order of the two transports alternating, so background load
hits both alike; the table gives median ms per call and the ratio urllib3 / ours (over 1.05:
ours is kept). urllib3 is not a dependency: this benchmark needs it installed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from urllib.parse import quote, urlencode

import numpy as np
import urllib3

import layerserve
from benchmarks.servers import layerserve_server
from layerserve._transport import LeanHTTP, Reply

__all__ = ["Urllib3Transport", "main"]

CASES = [("tiny apply: Dense 4->4, 1 row", 4, (1, 4)), ("64x1024 apply: Dense 1024->1024", 1024, (64, 1024))]


class Urllib3Transport:
    """The ``Transport`` interface over ``urllib3.HTTPConnectionPool`` (keep-alive, pooled)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float | None) -> None:
        self._pool = urllib3.connection_from_url(url, maxsize=16, headers=headers, timeout=timeout, retries=False)

    def request(self, method: str, path: str, headers: dict[str, str], content: bytes | None,
                params: dict[str, str] | None = None) -> Reply:
        target = quote(path, safe="/:@!$&'()*+,;=-._~%") + (f"?{urlencode(params)}" if params else "")
        response = self._pool.urlopen(method, target, body=content, headers=headers, redirect=False)
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.data

    def close(self) -> None:
        self._pool.close()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def run(rounds: int) -> list[tuple[str, float, float]]:
    server = layerserve_server()
    rows = []
    try:
        conns = {"ours": layerserve.Connection(server.url, graph="transport"),
                 "urllib3": layerserve.Connection(server.url, graph="transport",
                                                  transport=Urllib3Transport(server.url, {}, 60.0))}
        assert isinstance(conns["ours"].transport, LeanHTTP)
        for name, units, shape in CASES:
            dense = conns["ours"].layers.Dense(units)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            handles = {k: layerserve.layers.Layer._from_description(c, {"id": dense.id, "name": dense.name,
                                                                          "class": "Dense"})
                       for k, c in conns.items()}
            times: dict[str, list[float]] = {k: [] for k in handles}
            for _ in range(20):  # warm both: sessions, sockets
                for handle in handles.values():
                    handle(x)
            for r in range(rounds):
                order = list(handles) if r % 2 == 0 else list(reversed(handles))
                for key in order:
                    start = time.perf_counter()
                    handles[key](x)
                    times[key].append(time.perf_counter() - start)
            rows.append((name, _median_ms(times["ours"]), _median_ms(times["urllib3"])))
        for conn in conns.values():
            conn.close()
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    rows = run(args.rounds)
    print("| case | ours (LeanHTTP), ms | urllib3 pool, ms | urllib3 / ours |\n| --- | ---: | ---: | ---: |")
    for name, ours, other in rows:
        print(f"| {name} | {ours:.3f} | {other:.3f} | {other / ours:.2f} |")
    within = all(other <= ours * 1.05 for _, ours, other in rows)
    print(f"\nurllib3 {'is' if within else 'is not'} within 5% of ours on every case: "
          f"{'use urllib3' if within else 'keep ours'}")


if __name__ == "__main__":
    main()
