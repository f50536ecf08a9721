"""The version history of each graph: one record per commit (version, time, cause, what changed).

Records are appended after their commit (a crash between the two loses that record, never the
commit) and pruned by count and age; the versions a checkpoint was taken at are never pruned.

* state directory: ``history/<graph>.jsonl``, one JSON object per line, appended; pruning
  rewrites it (temp file, fsync, rename). A torn last line (a crash mid-append) is skipped.
* Redis: list ``ls:{g}:hist`` of JSON objects, appended with RPUSH.
"""

from __future__ import annotations

import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from layerserve.server.errors import StoreUnavailable

__all__ = ["FilesystemHistory", "History", "RedisHistory", "Retention"]


class Retention:
    """Keep the newest ``keep`` records, and none older than ``max_age_s`` (0: no age limit),
    plus those of the ``protected`` versions."""

    def __init__(self, keep: int, max_age_s: float) -> None:
        self.keep = max(1, keep)
        self.max_age_s = max_age_s

    def kept(self, records: list[dict[str, Any]], protected: set[int], now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        newest = {r["version"] for r in sorted(records, key=lambda r: r["version"])[-self.keep:]}
        young = self.max_age_s <= 0
        return [r for r in records if r["version"] in protected
                or (r["version"] in newest and (young or now - r["time"] <= self.max_age_s))]


class History(ABC):
    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._appended: dict[str, int] = {}  # graph -> records appended since the last prune
        self._lock = threading.Lock()

    def append(self, graph: str, record: dict[str, Any], protected: Callable[[], set[int]]) -> None:
        """Add ``record``; now and then prune, keeping the ``protected()`` versions."""
        self._append(graph, json.dumps(record, separators=(",", ":")))
        with self._lock:
            count = self._appended[graph] = self._appended.get(graph, 0) + 1
        # amortised: a prune parses and rewrites (fsync) the whole file, so at most every ``keep``
        # appends; the file holds at most about twice ``keep`` records, and reads filter anyway
        if count >= max(16, self.retention.keep):
            with self._lock:
                self._appended[graph] = 0
            self.prune(graph, protected())

    def records(self, graph: str, protected: set[int]) -> list[dict[str, Any]]:
        """The retained records, oldest first."""
        return sorted(self.retention.kept(self._read(graph), protected), key=lambda r: r["version"])

    def prune(self, graph: str, protected: set[int]) -> None:
        records = self._read(graph)
        kept = self.retention.kept(records, protected)
        if len(kept) < len(records):
            self._replace(graph, records, kept)

    def forget_after(self, graph: str, revision: int) -> None:
        """Drop the records of versions after ``revision``: commits answered before they were
        written (write-behind) that a crash then lost. Their numbers are given out again."""
        records = self._read(graph)
        kept = [r for r in records if r["version"] <= revision]
        if len(kept) < len(records):
            self._replace(graph, records, kept)

    @abstractmethod
    def _append(self, graph: str, line: str) -> None: ...

    @abstractmethod
    def _read(self, graph: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _replace(self, graph: str, old: list[dict[str, Any]], kept: list[dict[str, Any]]) -> None: ...


def _parse(lines: list[bytes]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:  # a torn append: the commit happened, its record did not
            continue
    return records


class FilesystemHistory(History):
    def __init__(self, root: Path, retention: Retention) -> None:
        super().__init__(retention)
        self.root = root / "history"
        self.root.mkdir(exist_ok=True)
        self._file_lock = threading.Lock()

    def _path(self, graph: str) -> Path:
        return self.root / f"{graph}.jsonl"

    def _append(self, graph: str, line: str) -> None:
        with self._file_lock, open(self._path(graph), "a+b") as handle:
            end = handle.seek(0, os.SEEK_END)
            torn = end > 0 and handle.seek(end - 1) >= 0 and handle.read(1) != b"\n"
            handle.write((b"\n" if torn else b"") + line.encode() + b"\n")  # a torn line stays alone

    def _read(self, graph: str) -> list[dict[str, Any]]:
        try:
            return _parse(self._path(graph).read_bytes().splitlines())
        except FileNotFoundError:
            return []

    def _replace(self, graph: str, old: list[dict[str, Any]], kept: list[dict[str, Any]]) -> None:
        with self._file_lock:
            current = self._read(graph)  # keep what was appended since ``old`` was read
            keep = kept + current[len(old):]
            tmp = self._path(graph).with_suffix(".tmp")
            with open(tmp, "wb") as handle:
                handle.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in keep))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path(graph))


_REPLACE = """
local n = tonumber(ARGV[1])
local rest = redis.call('LRANGE', KEYS[1], n, -1)
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
for _, item in ipairs(rest) do redis.call('RPUSH', KEYS[1], item) end
return 1
"""


class RedisHistory(History):
    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        super().__init__(retention)
        self.client = client
        self._replace_script = client.register_script(_REPLACE)

    @staticmethod
    def _key(graph: str) -> str:
        return f"ls:{{{graph}}}:hist"

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the Redis store is unavailable: {exc}") from exc

    def _append(self, graph: str, line: str) -> None:
        self._call(lambda: self.client.rpush(self._key(graph), line))

    def _read(self, graph: str) -> list[dict[str, Any]]:
        return _parse(self._call(lambda: self.client.lrange(self._key(graph), 0, -1)))

    def _replace(self, graph: str, old: list[dict[str, Any]], kept: list[dict[str, Any]]) -> None:
        lines = [json.dumps(r, separators=(",", ":")) for r in kept]
        self._call(lambda: self._replace_script(keys=[self._key(graph)], args=[len(old), *lines]))
