"""Named checkpoints of a graph, kept beside the graph's state: immutable once written.

A checkpoint is TensorFlow's two files (``layerserve.checkpoint``: the ``.index`` table and
the ``.data-00000-of-00001`` bytes) and a small JSON description. Two homes, one per store:

* state directory: ``checkpoints/<graph>/<name>/{model.index, model.data-00000-of-00001,
  meta.json}``. The three files are written (fsync) into ``checkpoints/<graph>/.tmp-<uuid>/``,
  which is then renamed to ``<name>``: the rename is the commit point, and it fails when the
  name exists, so two writers cannot both create one name. A delete renames the directory
  away first. Leftovers of a crash (``.tmp-*``, ``.del-*``) are removed when opened.
* Redis: hash ``ls:{g}:ck:<name>`` (fields ``index``, ``data``, ``meta``) and the set
  ``ls:{g}:cks`` of names, created together by one script that refuses an existing name.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import redis

from layerserve.checkpoint import DATA_SUFFIX, INDEX_SUFFIX
from layerserve.server.errors import StoreUnavailable
from layerserve.server.store.durable import fsync_dir, fsync_write

__all__ = ["CheckpointFiles", "FilesystemCheckpoints", "RedisCheckpoints"]

_STEM = "model"


class CheckpointFiles(ABC):
    @abstractmethod
    def create(self, graph: str, name: str, index: bytes, data: bytes, meta: dict[str, Any]) -> bool:
        """Store a new checkpoint; False (and nothing written) when ``name`` exists."""

    @abstractmethod
    def meta(self, graph: str, name: str) -> dict[str, Any] | None:
        """The checkpoint's description, None when there is none of that name."""

    @abstractmethod
    def files(self, graph: str, name: str) -> tuple[bytes, bytes] | None:
        """``(index, data)``, None when there is no checkpoint of that name."""

    @abstractmethod
    def names(self, graph: str) -> list[str]:
        """Every checkpoint of the graph, sorted."""

    @abstractmethod
    def delete(self, graph: str, name: str) -> bool:
        """Remove it; False when there was none."""



class FilesystemCheckpoints(CheckpointFiles):
    def __init__(self, root: Path) -> None:
        self.root = root / "checkpoints"
        self.root.mkdir(exist_ok=True)
        for leftover in [*self.root.glob("*/.tmp-*"), *self.root.glob("*/.del-*")]:
            shutil.rmtree(leftover, ignore_errors=True)

    def _dir(self, graph: str, name: str) -> Path:
        return self.root / graph / name

    def create(self, graph: str, name: str, index: bytes, data: bytes, meta: dict[str, Any]) -> bool:
        parent = self.root / graph
        if not parent.is_dir():
            parent.mkdir()
            fsync_dir(self.root)
        if self._dir(graph, name).exists():
            return False
        tmp = parent / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            fsync_write(tmp / (_STEM + DATA_SUFFIX), data)
            fsync_write(tmp / (_STEM + INDEX_SUFFIX), index)
            fsync_write(tmp / "meta.json", json.dumps(meta).encode())
            fsync_dir(tmp)
            os.rename(tmp, self._dir(graph, name))  # fails when another writer made the name first
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if self._dir(graph, name).exists():
                return False
            raise
        fsync_dir(parent)
        return True

    def meta(self, graph: str, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self._dir(graph, name) / "meta.json").read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def files(self, graph: str, name: str) -> tuple[bytes, bytes] | None:
        directory = self._dir(graph, name)
        try:
            return (directory / (_STEM + INDEX_SUFFIX)).read_bytes(), (directory / (_STEM + DATA_SUFFIX)).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, graph: str) -> list[str]:
        parent = self.root / graph
        if not parent.is_dir():
            return []
        return sorted(p.name for p in parent.iterdir() if not p.name.startswith(".") and (p / "meta.json").is_file())

    def delete(self, graph: str, name: str) -> bool:
        directory = self._dir(graph, name)
        doomed = directory.with_name(f".del-{uuid.uuid4().hex}")
        try:
            os.rename(directory, doomed)
        except FileNotFoundError:
            return False
        fsync_dir(directory.parent)
        shutil.rmtree(doomed, ignore_errors=True)
        return True


_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'index', ARGV[1], 'data', ARGV[2], 'meta', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""


class RedisCheckpoints(CheckpointFiles):
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._create = client.register_script(_CREATE)

    @staticmethod
    def _keys(graph: str, name: str) -> tuple[str, str]:
        return f"ls:{{{graph}}}:ck:{name}", f"ls:{{{graph}}}:cks"

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the Redis store is unavailable: {exc}") from exc

    def create(self, graph: str, name: str, index: bytes, data: bytes, meta: dict[str, Any]) -> bool:
        key, names = self._keys(graph, name)
        return bool(self._call(lambda: self._create(keys=[key, names], args=[index, data, json.dumps(meta), name])))

    def meta(self, graph: str, name: str) -> dict[str, Any] | None:
        raw = self._call(lambda: self.client.hget(self._keys(graph, name)[0], "meta"))
        return None if raw is None else json.loads(raw)  # type: ignore[no-any-return]

    def files(self, graph: str, name: str) -> tuple[bytes, bytes] | None:
        index, data = self._call(lambda: self.client.hmget(self._keys(graph, name)[0], ["index", "data"]))
        return None if index is None or data is None else (bytes(index), bytes(data))

    def names(self, graph: str) -> list[str]:
        return sorted(n.decode() for n in self._call(lambda: self.client.smembers(self._keys(graph, "")[1])))

    def delete(self, graph: str, name: str) -> bool:
        key, names = self._keys(graph, name)

        def run() -> int:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.srem(names, name)
            return int(pipe.execute()[0])
        return bool(self._call(run))
