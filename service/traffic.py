"""Recent traffic per layer, for the dashboard's live figures (``GET /v1/graphs/{g}/figures``).

Prometheus (``/metrics``) keeps cumulative counters for scrapers that compute rates over time;
a page that refreshes itself wants the figures of the last few seconds directly: requests per
second, p50 and p99 latency, errors and the dynamic batcher's run sizes. Each layer keeps its
recent events in numpy rings: recording one is a few array stores, and the figures over a
window are computed when asked for, with array operations, not on the request path. A ring
starts small and doubles (up to ``RING`` entries) only while it wraps within ``MAX_WINDOW_S``,
so memory follows each layer's request rate, and stays bounded under any load.

A request addresses a layer by name or by id (``/v1/graphs/g/layers/dense/apply``, or
``/v2/models/g.dense/infer``); the rings are kept by (graph, reference) as the path gives it,
and ``LayerTraffic.figures`` merges the references that resolve to one layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MAX_WINDOW_S", "RING", "LayerTraffic", "WindowFigures"]

MAX_WINDOW_S = 60.0  # the longest window the figures cover
RING = 4096  # events kept per layer at most: at 1,000 requests/s, the last 4 s are exact
_FIRST_SIZE = 64
_MAX_LAYERS = 20_000  # references tracked at most; the oldest tracked go first


class _Ring:
    """The last events of one kind: a time and two numbers each, oldest overwritten first."""

    __slots__ = ("count", "first", "second", "t")

    def __init__(self, size: int = _FIRST_SIZE) -> None:
        self.t = np.full(size, -np.inf)
        self.first = np.zeros(size)  # seconds taken, or requests carried
        self.second = np.zeros(size, dtype=np.int32)  # status, or rows
        self.count = 0

    def add(self, now: float, first: float, second: int) -> None:
        size = self.t.size
        slot = self.count % size
        if slot == 0 and self.count and size < RING and self.t[0] >= now - MAX_WINDOW_S:
            self._grow()  # about to overwrite an event the longest window still covers
            size, slot = self.t.size, self.count
        self.t[slot], self.first[slot], self.second[slot] = now, first, second
        self.count += 1

    def _grow(self) -> None:
        size = self.t.size  # the ring is full and in order here (count is a multiple of size)
        self.t = np.concatenate([self.t, np.full(size, -np.inf)])
        self.first = np.concatenate([self.first, np.zeros(size)])
        self.second = np.concatenate([self.second, np.zeros(size, dtype=np.int32)])
        self.count = size

    def since(self, start: float) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.t >= start
        return self.first[chosen], self.second[chosen]


@dataclass
class _Layer:
    requests: _Ring = field(default_factory=_Ring)
    total_requests: int = 0
    total_errors: int = 0


@dataclass
class WindowFigures:
    """One layer's figures over a window (latencies in milliseconds)."""

    requests: int = 0
    errors: int = 0
    served: int = 0  # successful requests
    latencies_s: list[np.ndarray] = field(default_factory=list)
    run_sizes: list[np.ndarray] = field(default_factory=list)
    total_requests: int = 0
    total_errors: int = 0

    def to_json(self, window_s: float) -> dict[str, Any]:
        """``batch``: requests per ONNX Runtime run. The batcher reports its runs; a request
        served outside them (an idle layer's apply runs inline, training applies run alone) is a
        run of one."""
        lat = np.concatenate(self.latencies_s) * 1000.0 if self.latencies_s else np.zeros(0)
        batched = np.concatenate(self.run_sizes).astype(np.int64) if self.run_sizes else np.zeros(0, np.int64)
        alone = max(self.served - int(batched.sum()), 0)
        counts = np.bincount(batched) if batched.size else np.zeros(2, dtype=np.int64)
        if counts.size < 2:
            counts = np.pad(counts, (0, 2 - counts.size))
        counts[1] += alone
        runs = int(counts.sum())
        mean = float((np.arange(counts.size) * counts).sum() / runs) if runs else None
        return {
            "requests": self.requests, "errors": self.errors,
            "requests_per_s": self.requests / window_s, "errors_per_s": self.errors / window_s,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
            "batch": {"runs": runs, "batched_runs": int(batched.size), "mean": mean,
                      "max": int(np.flatnonzero(counts).max()) if runs else None,
                      "sizes": {str(k): int(n) for k, n in enumerate(counts) if n}},
            "total_requests": self.total_requests, "total_errors": self.total_errors,
        }


class LayerTraffic:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_ref: dict[tuple[str, str], _Layer] = {}
        self._runs: dict[str, _Ring] = {}  # layer key ("graph/~id") -> the batcher's runs

    def record_request(self, graph: str, ref: str, status: int, seconds: float) -> None:
        """One finished request to a layer (any status: errors are figures too)."""
        now = self._clock()
        with self._lock:
            layer = self._by_ref.get((graph, ref))
            if layer is None:
                layer = self._by_ref[(graph, ref)] = _Layer()
                if len(self._by_ref) > _MAX_LAYERS:
                    del self._by_ref[next(iter(self._by_ref))]
            layer.requests.add(now, seconds, status)
            layer.total_requests += 1
            layer.total_errors += status >= 400

    def record_run(self, layer_key: str, requests: int, rows: int) -> None:
        """One run of the dynamic batcher (a ``BatchStats`` listener): how many requests it carried."""
        if not layer_key:
            return
        now = self._clock()
        with self._lock:
            ring = self._runs.get(layer_key)
            if ring is None:
                ring = self._runs[layer_key] = _Ring()
                if len(self._runs) > _MAX_LAYERS:
                    del self._runs[next(iter(self._runs))]
            ring.add(now, requests, rows)

    def forget(self, graph: str, refs: Iterable[str], layer_key: str) -> None:
        with self._lock:
            for ref in refs:
                self._by_ref.pop((graph, ref), None)
            self._runs.pop(layer_key, None)

    def figures(self, graph: str, window_s: float, resolve: Callable[[str], str | None]) -> dict[str, WindowFigures]:
        """Figures of the last ``window_s`` seconds by layer id; ``resolve`` maps a reference
        (name or id) to the layer id, or None for a layer that is gone."""
        start = self._clock() - window_s
        with self._lock:
            refs = [(ref, layer) for (g, ref), layer in self._by_ref.items() if g == graph]
            prefix = f"{graph}/"
            runs = [(key[len(prefix):], ring) for key, ring in self._runs.items() if key.startswith(prefix)]
        out: dict[str, WindowFigures] = {}
        for ref, layer in refs:
            layer_id = resolve(ref)
            if layer_id is None:
                continue
            with self._lock:  # one ring at a time: recording waits microseconds, not the whole graph
                seconds, status = layer.requests.since(start)
                totals = layer.total_requests, layer.total_errors
            figures = out.setdefault(layer_id, WindowFigures())
            errors = int(np.count_nonzero(status >= 400))
            figures.requests += int(status.size)
            figures.errors += errors
            figures.served += int(status.size) - errors
            figures.latencies_s.append(seconds)
            figures.total_requests += totals[0]
            figures.total_errors += totals[1]
        for layer_id, ring in runs:
            if layer_id in out or resolve(layer_id) is not None:
                with self._lock:
                    carried, _ = ring.since(start)
                out.setdefault(layer_id, WindowFigures()).run_sizes.append(carried)
        return out
