"""What the hostile-load tests watch on a real server: ``/healthz`` latency while something runs,
and the server process's resident memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["HealthWatch", "peak_rss_bytes", "rss_bytes", "tree_cpu_seconds", "watch_health"]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (Linux ``/proc``)."""
    return _status_kib(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The highest resident memory of process ``pid`` so far: catches what was freed again."""
    return _status_kib(pid, "VmHWM")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, reaped children's included) of process ``pid`` and of every
    process below it now: the server with its worker processes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime (clock ticks)
        todo.extend(children.get(current, []))
    return total / 100


class HealthWatch:
    """The slowest ``/healthz`` answer seen, and every failure (each probe is a new connection)."""

    def __init__(self) -> None:
        self.worst_s, self.probes = 0.0, 0
        self.failures: list[str] = []

    def assert_live(self, limit_s: float = 1.0) -> None:
        assert not self.failures, self.failures[:5]
        assert self.probes >= 2, f"only {self.probes} probes ran"
        assert self.worst_s < limit_s, f"/healthz took {self.worst_s:.2f} s while the request ran"


@contextmanager
def watch_health(url: str, *, interval_s: float = 0.1, timeout_s: float = 30.0) -> Iterator[HealthWatch]:
    """Probes ``url``'s ``/healthz`` in a thread for as long as the block runs."""
    watch, stop = HealthWatch(), threading.Event()

    def probe() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                status = httpx.get(url + "/healthz", timeout=timeout_s).status_code
                if status != 200:
                    watch.failures.append(f"status {status}")
            except Exception as exc:  # recorded: the test fails on it
                watch.failures.append(repr(exc))
            watch.worst_s = max(watch.worst_s, time.perf_counter() - start)
            watch.probes += 1
            stop.wait(interval_s)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        deadline = time.monotonic() + timeout_s
        while watch.probes < 2 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # one probe at least after the block too
        stop.set()
        thread.join(timeout_s + 5)
        assert not thread.is_alive(), "the health probe did not finish"
