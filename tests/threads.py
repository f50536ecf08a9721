"""Worker threads whose failures fail the test: every exception a worker meets is kept and the
test's own thread raises it (pytest itself only warns about an exception in another thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Spans", "Worker", "join_all"]


class Worker(threading.Thread):
    """Runs ``target(*args)``; ``error`` holds what it raised (None when it returned)."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._call, self._args = target, args
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call(*self._args)
        except BaseException as exc:  # kept and raised again in the test's thread by join_all
            self.error = exc


def join_all(workers: Iterable[Worker], timeout: float = 60.0) -> None:
    """Wait for every worker; fail on one still running or on the first error any of them met."""
    workers = list(workers)
    for worker in workers:
        worker.join(timeout)
    stuck = [w.name for w in workers if w.is_alive()]
    assert not stuck, f"workers still running after {timeout} s: {stuck}"
    errors = [w.error for w in workers if w.error is not None]
    if errors:
        raise AssertionError(f"{len(errors)} worker(s) failed; the first: {errors[0]!r}") from errors[0]


class Spans:
    """When each request of each thread was in flight: proof that requests really overlapped
    (a concurrency test whose requests ran one after the other tests nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: list[tuple[int, float, float]] = []

    @contextmanager
    def span(self, who: int | None = None) -> Iterator[None]:
        """Time one request of ``who`` (by default the calling thread; an asyncio task passes its own)."""
        start = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.spans.append((threading.get_ident() if who is None else who, start, time.monotonic()))

    def overlapping_pairs(self) -> int:
        """Pairs of requests from different threads (or tasks) that were in flight at the same time."""
        spans = sorted(self.spans, key=lambda s: s[1])
        pairs = 0
        for k, (thread, _, end) in enumerate(spans):
            for other, start, _ in spans[k + 1:]:
                if start >= end:
                    break
                pairs += other != thread
        return pairs

    def assert_overlapped(self) -> None:
        assert self.overlapping_pairs() > 0, f"the {len(self.spans)} requests never overlapped"
