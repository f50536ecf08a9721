"""Recent traffic per layer, for the dashboard's live figures (``GET /v1/graphs/{g}/figures``).

Prometheus (``/metrics``) keeps cumulative counters for scrapers that compute rates over time;
a page that refreshes itself wants the figures of the last few seconds directly: requests per
second, p50 and p99 latency, errors and the dynamic batcher's run sizes. Each layer keeps its
most recent events in bounded rings (``RING`` entries), so memory stays flat under any load,
and the figures over a window are computed when asked for, not on the request path.

A request addresses a layer by name or by id (``/v1/graphs/g/layers/dense/apply``, or
``/v2/models/g.dense/infer``); the rings are kept by (graph, reference) as the path gives it,
and ``LayerTraffic.figures`` merges the references that resolve to one layer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RING", "LayerTraffic", "WindowFigures"]

RING = 4096  # events kept per layer: at 1,000 requests/s, the last 4 s are exact
_MAX_LAYERS = 20_000  # references tracked at most; the least recently used go first


@dataclass
class _Rings:
    requests: deque[tuple[float, float, int]] = field(default_factory=lambda: deque(maxlen=RING))  # t, seconds, status
    runs: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=RING))  # t, requests in the run
    total_requests: int = 0
    total_errors: int = 0


@dataclass
class WindowFigures:
    """One layer's figures over a window (latencies in milliseconds)."""

    requests: int = 0
    errors: int = 0
    served: int = 0  # successful requests
    latencies_s: list[float] = field(default_factory=list)
    run_sizes: list[int] = field(default_factory=list)
    total_requests: int = 0
    total_errors: int = 0

    def to_json(self, window_s: float) -> dict[str, Any]:
        """``batch``: requests per ONNX Runtime run. The batcher reports its runs; a request
        served outside them (an idle layer's apply runs inline, training applies run alone) is a
        run of one."""
        lat = np.asarray(self.latencies_s, dtype=np.float64) * 1000.0
        alone = max(self.served - sum(self.run_sizes), 0)
        sizes = np.asarray([*self.run_sizes, *([1] * alone)], dtype=np.int64)
        counts = np.bincount(sizes) if sizes.size else np.zeros(0, dtype=np.int64)
        return {
            "requests": self.requests, "errors": self.errors,
            "requests_per_s": self.requests / window_s, "errors_per_s": self.errors / window_s,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
            "batch": {"runs": int(sizes.size), "batched_runs": len(self.run_sizes), "mean": float(sizes.mean()) if sizes.size else None,
                      "max": int(sizes.max()) if sizes.size else None,
                      "sizes": {str(k): int(n) for k, n in enumerate(counts) if n}},
            "total_requests": self.total_requests, "total_errors": self.total_errors,
        }


class LayerTraffic:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_ref: dict[tuple[str, str], _Rings] = {}
        self._by_key: dict[str, _Rings] = {}  # layer key ("graph/~id") -> batched runs

    def _rings(self, table: dict[Any, _Rings], key: Any) -> _Rings:
        rings = table.pop(key, None) or _Rings()
        table[key] = rings  # most recently used last
        if len(table) > _MAX_LAYERS:
            del table[next(iter(table))]
        return rings

    def record_request(self, graph: str, ref: str, status: int, seconds: float) -> None:
        """One finished request to a layer (any status: errors are figures too)."""
        now = self._clock()
        with self._lock:
            rings = self._rings(self._by_ref, (graph, ref))
            rings.requests.append((now, seconds, status))
            rings.total_requests += 1
            rings.total_errors += status >= 400

    def record_run(self, layer_key: str, requests: int, rows: int) -> None:
        """One run of the dynamic batcher (``BatchStats`` listener): how many requests it carried."""
        if not layer_key:
            return
        now = self._clock()
        with self._lock:
            self._rings(self._by_key, layer_key).runs.append((now, requests))

    def forget(self, graph: str, refs: Iterable[str], layer_key: str) -> None:
        with self._lock:
            for ref in refs:
                self._by_ref.pop((graph, ref), None)
            self._by_key.pop(layer_key, None)

    def figures(self, graph: str, window_s: float, resolve: Callable[[str], str | None]) -> dict[str, WindowFigures]:
        """Figures of the last ``window_s`` seconds by layer id; ``resolve`` maps a reference
        (name or id) to the layer id, or None for a layer that is gone."""
        since = self._clock() - window_s
        with self._lock:
            refs = [(ref, list(r.requests), r.total_requests, r.total_errors)
                    for (g, ref), r in self._by_ref.items() if g == graph]
            prefix = f"{graph}/"
            runs = {key[len(prefix):]: list(r.runs) for key, r in self._by_key.items() if key.startswith(prefix)}
        out: dict[str, WindowFigures] = {}
        for ref, events, total, total_errors in refs:
            layer_id = resolve(ref)
            if layer_id is None:
                continue
            figures = out.setdefault(layer_id, WindowFigures())
            figures.total_requests += total
            figures.total_errors += total_errors
            for t, seconds, status in events:
                if t >= since:
                    figures.requests += 1
                    figures.errors += status >= 400
                    figures.served += status < 400
                    figures.latencies_s.append(seconds)
        for layer_id, run_events in runs.items():
            if layer_id in out or resolve(layer_id) is not None:
                out.setdefault(layer_id, WindowFigures()).run_sizes.extend(n for t, n in run_events if t >= since)
        return out
