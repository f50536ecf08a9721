"""Prometheus metrics of one server (``GET /metrics``), on a registry of its own.

The HTTP middleware records requests, latencies, bytes and errors as they happen. The
runtime's own figures are read when scraped: the dynamic batcher's batch sizes (its
``BatchStats``) and the memory report of the executor (sessions cached, resident variables,
device memory where the device reports it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from layerserve.server.runtime.batching import BatchStats
from layerserve.server.runtime.memory import memory_report
from layerserve.server.version import installed_version

__all__ = ["CONTENT_TYPE", "RuntimeCollector", "ServiceMetrics", "build_info"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_MEMORY_GAUGES = {
    "sessions_cached": "ONNX Runtime sessions in the cache",
    "sessions_bytes": "bytes of the models behind the cached sessions (bounded by --max-session-bytes)",
    "resident_layers": "layers whose variables are resident on the execution device",
    "resident_variable_bytes": "bytes of variables resident on the execution device",
    "device_used_bytes": "memory in use on the execution device (where the device reports it)",
    "device_total_bytes": "memory of the execution device (where the device reports it)",
}


def build_info() -> dict[str, str]:
    """``layerserve_build_info``'s labels: our version, Python's, ONNX Runtime's (CPU or GPU wheel)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    runtime = "none"
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            runtime = f"{dist} {version(dist)}"
            break
        except PackageNotFoundError:
            continue
    return {"version": installed_version(), "python": platform.python_version(), "onnxruntime": runtime}


class RuntimeCollector(Collector):
    """Reads the batcher's statistics and the executor's memory report at scrape time."""

    def __init__(self, plane: Callable[[], Any], batch_stats: BatchStats) -> None:
        self._plane, self._stats = plane, batch_stats

    def collect(self) -> Iterator[Metric]:
        snap = self._stats.snapshot()
        buckets = [(str(b), float(sum(n for size, n in snap["sizes"].items() if size <= b))) for b in _BATCH_BUCKETS]
        yield HistogramMetricFamily("layerserve_batch_size", "requests carried by one batched ONNX Runtime run",
                                    buckets=[*buckets, ("+Inf", float(snap["runs"]))], sum_value=snap["requests"])
        yield GaugeMetricFamily("layerserve_batch_size_max", "most requests one batched run carried", snap["max"])
        yield CounterMetricFamily("layerserve_batched_rows", "input rows run through the batcher", snap["rows"])
        plane = self._plane()
        report = memory_report(plane.executor) if plane is not None else {"sessions_cached": 0}
        for key, doc in _MEMORY_GAUGES.items():
            if key in report:
                yield GaugeMetricFamily(f"layerserve_{key}", doc, float(report[key]))


class ServiceMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the scrape
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("layerserve_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("layerserve_request_duration_seconds", "HTTP request latency by route template",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.apply_latency = Histogram("layerserve_apply_duration_seconds",
                                       "latency of successful applies (native apply, v2 infer) per layer",
                                       ["graph", "layer"], buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter("layerserve_errors", "error responses by the error body's code",
                              ["code", "status"], registry=r)
        self.bytes_in = Counter("layerserve_request_bytes", "request body bytes received", ["route"], registry=r)
        self.bytes_out = Counter("layerserve_response_bytes", "response body bytes sent", ["route"], registry=r)
        self.in_flight = Gauge("layerserve_requests_in_flight", "requests being served", registry=r)
        self.ready = Gauge("layerserve_ready", "1 once the store is loaded and the runtime is ready", registry=r)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, open fds, ...
        PlatformCollector(registry=r)  # python_info
        Info("layerserve_build", "the server's version and the runtime it executes on", registry=r).info(build_info())
        # Labelled children, looked up once: ``labels()`` checks and locks on every call.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._apply_children: dict[tuple[str, str], Any] = {}
        # Per layer (as the path named it): [successes, their ns, failures, their ns, last success ms].
        self._inferences: dict[tuple[str, str], list[int]] = {}

    def record(self, method: str, route: str, status: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """One finished request: its count, latency and bytes."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route),
                        self.bytes_in.labels(route), self.bytes_out.labels(route))
            self._request_children[key] = children
        count, latency, received, sent = children
        count.inc()
        latency.observe(seconds)
        received.inc(bytes_in)
        sent.inc(bytes_out)

    def observe_apply(self, graph: str, layer: str, seconds: float) -> None:
        child = self._apply_children.get((graph, layer))
        if child is None:
            child = self._apply_children[(graph, layer)] = self.apply_latency.labels(graph, layer)
        child.observe(seconds)

    def count_inference(self, graph: str, layer: str, seconds: float, *, ok: bool) -> None:
        """One apply or v2 inference, for the protocol's statistics extension."""
        entry = self._inferences.setdefault((graph, layer), [0, 0, 0, 0, 0])
        offset = 0 if ok else 2
        entry[offset] += 1
        entry[offset + 1] += int(seconds * 1e9)
        if ok:
            entry[4] = int(time.time() * 1000)

    def inference_stats(self, graph: str, names: set[str]) -> dict[str, int]:
        """Summed over the names a layer was reached by (its name, its id)."""
        total = [0, 0, 0, 0, 0]
        for name in names:
            entry = self._inferences.get((graph, name), [0, 0, 0, 0, 0])
            total = [a + b for a, b in zip(total[:4], entry[:4])] + [max(total[4], entry[4])]
        keys = ("success", "success_ns", "fail", "fail_ns", "last_ms")
        return dict(zip(keys, total))

    def install(self, plane: Callable[[], Any], batch_stats: BatchStats, ready: Callable[[], float]) -> None:
        """Attach the runtime's figures, read at each scrape."""
        self.ready.set_function(ready)
        self.registry.register(RuntimeCollector(plane, batch_stats))

    def forget_layer(self, graph: str, layer: str) -> None:
        """Drop a deleted layer's series, so that churn does not grow the registry."""
        self._apply_children.pop((graph, layer), None)
        self._inferences.pop((graph, layer), None)
        with contextlib.suppress(KeyError):
            self.apply_latency.remove(graph, layer)

    def render(self) -> bytes:
        return generate_latest(self.registry)
