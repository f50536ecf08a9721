"""Writes that survive a crash: file contents and directory entries fsynced before returning, or
fsynced together a moment later."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

__all__ = ["PeriodicSync", "fsync_dir", "fsync_write"]

log = logging.getLogger("layerserve.store")


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the caller renames or fsyncs the directory)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PeriodicSync:
    """Files written without an fsync, fsynced together every ``interval_s`` by a background
    thread (started at the first one)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._dirty: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def mark(self, path: Path) -> None:
        with self._lock:
            self._dirty.add(path)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="layerserve-fsync", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            paths, self._dirty = self._dirty, set()
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # replaced by a snapshot meanwhile (which was fsynced)
                continue
            try:
                os.fsync(fd)
            except OSError as exc:
                log.error("could not fsync %s: %s", path, exc)
            finally:
                os.close(fd)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
