"""Dynamic batching: concurrent inference applies of one layer gathered into one run.

Applies with the same key (layer, input signature, variable version) queue together. The
first one to arrive at an idle queue runs at once with whatever is queued, so a lone
request never waits. While a run is in progress, newcomers queue; when it ends, the first
queued request leads the next run, taking everything queued (FIFO, up to
``max_batch_size`` rows). The leader waits (at most ``max_queue_delay_ms``) only when fewer
requests are queued than the previous run carried, i.e. when more are known to be coming.

Bit identity: ONNX Runtime's CPU kernels take another code path for a batch of one row
(GEMV instead of GEMM, another threading split for convolutions), so a one-row input would
not give the bits it gets inside a larger batch. Every inference run of a batch-separable
layer therefore has at least two rows, batching on or off: a lone one-row request is padded
with a copy of itself and the padding dropped. With that, a request's result is
bit-identical whether it ran alone, batched with anything, or with batching off.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from layerserve.server.errors import InvalidArgument

__all__ = ["BatchPolicy", "BatchStats", "Batcher", "parse_batching", "run_padded"]

Execute = Callable[[np.ndarray], np.ndarray]
_KEYS: dict[str, type | tuple[type, ...]] = {"enabled": bool, "max_batch_size": int,
                                              "max_queue_delay_ms": (int, float)}


@dataclass(frozen=True)
class BatchPolicy:
    enabled: bool = True
    max_batch_size: int = 64
    max_queue_delay_ms: float = 2.0

    @classmethod
    def from_settings(cls, settings: Any) -> BatchPolicy:
        return cls(bool(settings.batching), int(settings.max_batch_size), float(settings.max_queue_delay_ms))

    def with_overrides(self, overrides: dict[str, Any]) -> BatchPolicy:
        """These (server) defaults with a layer's overrides on top."""
        if not overrides:
            return self
        return BatchPolicy(bool(overrides.get("enabled", self.enabled)),
                           int(overrides.get("max_batch_size", self.max_batch_size)),
                           float(overrides.get("max_queue_delay_ms", self.max_queue_delay_ms)))


def parse_batching(value: object) -> dict[str, Any]:
    """A layer's batching overrides from a create or patch body, checked."""
    if not isinstance(value, dict):
        raise InvalidArgument("batching must be an object with enabled, max_batch_size, max_queue_delay_ms",
                              code="invalid_batching")
    out: dict[str, Any] = {}
    for key, item in value.items():
        kind = _KEYS.get(key)
        if kind is None:
            raise InvalidArgument(f"unknown batching option {key!r}; known: {', '.join(_KEYS)}",
                                  code="invalid_batching")
        if not isinstance(item, kind) or (kind is not bool and isinstance(item, bool)):
            raise InvalidArgument(f"batching.{key} has the wrong type: {item!r}", code="invalid_batching")
        out[key] = item
    if out.get("max_batch_size", 1) < 1 or not 0 <= out.get("max_queue_delay_ms", 0) <= 1000:
        raise InvalidArgument("batching needs max_batch_size >= 1 and 0 <= max_queue_delay_ms <= 1000",
                              code="invalid_batching")
    return out


class BatchStats:
    """How many requests each run carried, for ``/metrics`` (thread-safe, cumulative)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sizes: dict[int, int] = {}  # requests per run -> number of runs
        self.rows: int = 0
        # Called with (layer key, requests, rows) after each run: per-layer figures (the dashboard's).
        self.listeners: list[Callable[[str, int, int], None]] = []

    def record(self, requests: int, rows: int, layer: str = "") -> None:
        with self._lock:
            self.sizes[requests] = self.sizes.get(requests, 0) + 1
            self.rows += rows
        for listener in self.listeners:
            listener(layer, requests, rows)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            sizes = dict(sorted(self.sizes.items()))
        return {"runs": sum(sizes.values()), "requests": sum(k * v for k, v in sizes.items()),
                "rows": self.rows, "sizes": sizes, "max": max(sizes, default=0)}


def run_padded(execute: Execute, x: np.ndarray) -> np.ndarray:
    """Run with at least two rows, so a lone row takes the same kernels as a batch."""
    if x.shape[0] != 1:
        return execute(x)
    return execute(np.concatenate([x, x]))[:1]


class _Pending:
    __slots__ = ("done", "error", "event", "lead", "result", "rows", "x")

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.rows = x, int(x.shape[0])
        self.event = threading.Event()
        self.done = self.lead = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class _Queue:
    def __init__(self, anchor: object) -> None:
        self.cond = threading.Condition()
        self.items: deque[_Pending] = deque()
        self.running = False
        self.waiting_for = 0  # the leader waits until this many requests are queued
        self.last_requests = 1
        self.anchor = anchor  # keeps objects whose id() is part of the key alive


class Batcher:
    def __init__(self, stats: BatchStats | None = None) -> None:
        self.stats = stats or BatchStats()
        self._queues: dict[Hashable, _Queue] = {}
        self._lock = threading.Lock()

    def run(self, key: Hashable, x: np.ndarray, policy: BatchPolicy, execute: Execute,
            anchor: object = None) -> np.ndarray:
        """``execute`` on ``x`` (leading axis = rows), possibly together with concurrent calls."""
        item = _Pending(x)
        q = self._enqueue(key, item, anchor)
        if not item.lead:
            item.event.wait()
        if not item.done:
            self._lead(key, q, policy, execute)
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _enqueue(self, key: Hashable, item: _Pending, anchor: object) -> _Queue:
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = _Queue(anchor)
        with q.cond:
            q.items.append(item)
            if not q.running:
                q.running = item.lead = True
            elif q.waiting_for and len(q.items) >= q.waiting_for:
                q.cond.notify()
        return q

    def _take(self, q: _Queue, policy: BatchPolicy) -> list[_Pending]:
        """The next batch, FIFO; waits briefly only for requests known to be on their way."""
        with q.cond:
            expected = min(q.last_requests, policy.max_batch_size)
            if len(q.items) < expected and policy.max_queue_delay_ms > 0:
                q.waiting_for = expected
                deadline = time.monotonic() + policy.max_queue_delay_ms / 1000
                while len(q.items) < expected and (left := deadline - time.monotonic()) > 0:
                    q.cond.wait(left)
                q.waiting_for = 0
            batch, rows = [q.items.popleft()], 0
            rows = batch[0].rows
            while q.items and rows + q.items[0].rows <= policy.max_batch_size:
                rows += q.items[0].rows
                batch.append(q.items.popleft())
            q.last_requests = len(batch)
        return batch

    def _lead(self, key: Hashable, q: _Queue, policy: BatchPolicy, execute: Execute) -> None:
        batch = self._take(q, policy)
        try:
            _execute_batch(batch, execute)
            self.stats.record(len(batch), sum(p.rows for p in batch), layer=_layer_of(key))
        finally:
            self._hand_over(key, q)
            for pending in batch:
                pending.done = True
                pending.event.set()

    def _hand_over(self, key: Hashable, q: _Queue) -> None:
        """Wake the next queued request as leader, or mark the queue idle (and drop it)."""
        with q.cond:
            if q.items:
                q.items[0].lead = True
                q.items[0].event.set()
                return
            q.running = False
        with self._lock, q.cond:
            if not q.running and not q.items and self._queues.get(key) is q:
                del self._queues[key]


def _layer_of(key: Hashable) -> str:
    """The layer key that leads the executor's queue keys (``(layer.key, dtype, shape, ...)``)."""
    return key[0] if isinstance(key, tuple) and key and isinstance(key[0], str) else ""


def _execute_batch(batch: list[_Pending], execute: Execute) -> None:
    """One run for the batch, split back; if it fails, each request runs alone for its own error."""
    if len(batch) == 1:
        _execute_alone(batch[0], execute)
        return
    try:
        y = execute(np.concatenate([p.x for p in batch]))
    except Exception:
        for pending in batch:
            _execute_alone(pending, execute)
        return
    offset = 0
    for pending in batch:
        pending.result = y[offset:offset + pending.rows]
        offset += pending.rows


def _execute_alone(pending: _Pending, execute: Execute) -> None:
    try:
        pending.result = run_padded(execute, pending.x)
    except BaseException as exc:
        pending.error = exc
