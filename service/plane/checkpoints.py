"""Named checkpoints of a graph and its version history.

A checkpoint is every variable of the graph at one version, kept as TensorFlow's own files
(``layerserve.checkpoint``), so that a download is a checkpoint TensorFlow reads and an upload
is one TensorFlow wrote. Checkpoints are immutable. A restore assigns every variable of the
graph in one commit (applies see the old or the new values, never a mix); a checkpoint that
lacks a variable, or holds it in another shape or dtype, changes nothing and raises
TensorFlow's error (``NotFoundError``, ``InvalidArgumentError``). Tensors of the checkpoint that
are not variables of the graph (optimizer slots, say) are left alone, as TensorFlow's
``Saver`` leaves them.

Every commit of a graph is a version (its revision) with a time and a cause; the history
keeps them by count and age, never dropping the version a checkpoint was taken at.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from layerserve.checkpoint import CheckpointFormatError, decode_bundle, encode_bundle, read_index
from layerserve.server.core.graph import Graph
from layerserve.server.core.naming import GRAPH_NAME, check_name
from layerserve.server.errors import Conflict, InvalidArgument, NotFound
from layerserve.server.plane.dataplane import DataPlane
from layerserve.server.plane.transactions import COMMIT_CAUSE, retried
from layerserve.server.store.checkpoints import CheckpointFiles, FilesystemCheckpoints, RedisCheckpoints
from layerserve.server.store.history import FilesystemHistory, History, RedisHistory, Retention

__all__ = ["CHECKPOINT_NAME", "Checkpoints", "LIVE_VERSIONS", "tensor_name"]

log = logging.getLogger("layerserve.checkpoints")

# Like layer names, but never starting with "." (the store's temporary entries do).
CHECKPOINT_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
# OIP's ``/versions/{v}``: these mean the live weights, so no checkpoint may take them.
LIVE_VERSIONS = frozenset({"1", "live"})
# A tensor name TensorFlow accepts for a variable (an op name); "." and ".." segments are refused too.
_TENSOR_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]{0,1023}")
_CACHED_CHECKPOINTS = 8
_RESTORED: contextvars.ContextVar[str | None] = contextvars.ContextVar("restored_checkpoint", default=None)
_NOT_FOUND = ("Restoring from checkpoint failed. This is most likely due to a Variable name or other graph key that "
              "is missing from the checkpoint. Please ensure that you have not altered the graph expected based on "
              "the checkpoint. Original error:\n\nKey {key} not found in checkpoint")


def tensor_name(variable: str) -> str:
    """A checkpoint's key for a variable: its name without the output index (``dense/kernel``)."""
    return variable.rsplit(":", 1)[0]


def _check_graph(graph: object) -> str:
    """Graph names become file and key names here: checked before any is used."""
    return check_name(graph, GRAPH_NAME, "graph name")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not CHECKPOINT_NAME.fullmatch(name) or name in LIVE_VERSIONS:
        raise InvalidArgument(f"a checkpoint name must match {CHECKPOINT_NAME.pattern} and not be "
                              f"{' or '.join(sorted(LIVE_VERSIONS))}, got {str(name)[:80]!r}", code="invalid_name")
    return name


def _variables_json(tensors: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": f"{key}:0", "shape": list(value.shape), "dtype": str(value.dtype)}
            for key, value in sorted(tensors.items())]


class Checkpoints:
    def __init__(self, plane: DataPlane, files: CheckpointFiles, history: History) -> None:
        self.plane = plane
        self.settings = plane.settings  # read by ``retried``
        self.files = files
        self.history = history
        self._cache: OrderedDict[tuple[str, str], tuple[str, dict[str, np.ndarray]]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, plane: DataPlane) -> Checkpoints:
        """The service for ``plane``'s store, hooked into its commits and pinned applies."""
        from layerserve.server.store.filesystem import FilesystemStore
        from layerserve.server.store.redis import RedisStore

        retention = Retention(plane.settings.keep_history, plane.settings.history_max_age_s)
        store = plane.store
        if isinstance(store, RedisStore):
            service = cls(plane, RedisCheckpoints(store.client), RedisHistory(store.client, retention))
        elif isinstance(store, FilesystemStore):
            service = cls(plane, FilesystemCheckpoints(store.root), FilesystemHistory(store.root, retention))
            for name, g in plane.graphs.items():  # versions written behind and lost in a crash
                service.history.forget_after(name, g.revision)
        else:
            raise TypeError(f"no checkpoint storage for a {type(store).__name__}")
        plane.commit_listeners.append(service._on_commit)
        plane.pinned_values = service.values
        return service

    # ---- create, upload ------------------------------------------------------------------
    def create(self, graph: str, name: str) -> dict[str, Any]:
        """Snapshot every variable of the graph as it is now."""
        _check_name(name)
        g = self.plane.graph(graph)
        with g.lock:  # the values and the revision of one commit
            values, version = g.values, g.revision
            self.plane.store.flush(graph)  # a checkpoint's version is one a crash cannot take back
            tensors = {tensor_name(v.name): values[v.name] for v in g.variables.values() if v.name in values}
        index, data = encode_bundle(tensors)
        return self._store(graph, name, index, data, {"version": version, "source": "snapshot",
                                                      "variables": _variables_json(tensors)})

    def upload(self, graph: str, name: str, index: bytes, data: bytes) -> dict[str, Any]:
        """Keep a checkpoint TensorFlow wrote, once every tensor in it reads back whole."""
        _check_name(name)
        self.plane.graph(graph)
        try:
            tensors = decode_bundle(index, data)
        except CheckpointFormatError as exc:
            raise InvalidArgument(f"not a readable TensorFlow checkpoint: {exc}", code="invalid_checkpoint") from None
        bad = [key for key in tensors if not _TENSOR_NAME.fullmatch(key) or {".", ".."} & set(key.split("/"))]
        if bad:
            raise InvalidArgument(f"the checkpoint holds a tensor whose name is no TensorFlow variable name: "
                                  f"{bad[0][:200]!r}", code="invalid_checkpoint")
        for key, value in tensors.items():
            self.plane._check_size(value.shape, f"tensor {key!r} of the checkpoint")
        return self._store(graph, name, index, data, {"version": None, "source": "upload",
                                                      "variables": _variables_json(tensors)})

    def _store(self, graph: str, name: str, index: bytes, data: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        meta = {"name": name, "graph": graph, "id": uuid.uuid4().hex, "created": time.time(),
                "bytes": len(index) + len(data), **meta}
        if not self.files.create(graph, name, index, data, meta):
            raise Conflict(f"graph {graph!r} already has a checkpoint {name!r}; checkpoints are immutable: "
                           "delete it first or choose another name", code="checkpoint_exists")
        return meta

    # ---- read, delete --------------------------------------------------------------------
    def describe(self, graph: str, name: str) -> dict[str, Any]:
        meta = self.files.meta(_check_graph(graph), _check_name(name))
        if meta is None:
            raise NotFound(f"graph {graph!r} has no checkpoint {name!r}", code="checkpoint_not_found")
        return meta

    def listing(self, graph: str) -> list[dict[str, Any]]:
        self.plane.graph(graph)
        metas = (self.files.meta(graph, name) for name in self.files.names(graph))
        return [{k: v for k, v in m.items() if k != "variables"} for m in metas if m is not None]

    def names(self, graph: str) -> list[str]:
        return self.files.names(_check_graph(graph))

    def download(self, graph: str, name: str) -> tuple[bytes, bytes]:
        files = self.files.files(_check_graph(graph), _check_name(name))
        if files is None:
            raise NotFound(f"graph {graph!r} has no checkpoint {name!r}", code="checkpoint_not_found")
        return files

    def delete(self, graph: str, name: str) -> None:
        if not self.files.delete(_check_graph(graph), _check_name(name)):
            raise NotFound(f"graph {graph!r} has no checkpoint {name!r}", code="checkpoint_not_found")
        with self._lock:
            self._cache.pop((graph, name), None)

    def values(self, graph: str, name: str) -> dict[str, np.ndarray]:
        """Variable name (``dense/kernel:0``) -> value, for applies pinned to the checkpoint."""
        meta = self.describe(graph, name)
        with self._lock:
            cached = self._cache.get((graph, name))
            if cached is not None and cached[0] == meta["id"]:
                self._cache.move_to_end((graph, name))
                return cached[1]
        index, data = self.download(graph, name)
        values = {f"{key}:0": value for key, value in decode_bundle(index, data).items()}
        with self._lock:
            self._cache[(graph, name)] = (meta["id"], values)
            while len(self._cache) > _CACHED_CHECKPOINTS:
                self._cache.popitem(last=False)
        return values

    # ---- restore -------------------------------------------------------------------------
    @retried
    def restore(self, graph: str, name: str, if_match: int | None = None) -> dict[str, Any]:
        """Assign every variable of the graph from the checkpoint, in one commit."""
        index, data = self.download(graph, name)
        entries = read_index(index)
        g = self.plane.graph(graph)
        token = _RESTORED.set(name)
        cause = COMMIT_CAUSE.set("restore")
        try:
            with self.plane._mutation(g):
                if if_match is not None and g.revision != if_match:
                    raise Conflict(f"graph {graph!r} is at version {g.revision}, not {if_match}",
                                   code="version_conflict", version=g.revision)
                new = self._restored_values(g, entries, index, data)
                g.set_values(new)
                self.plane._commit(g, variables=list(new))
        finally:
            COMMIT_CAUSE.reset(cause)
            _RESTORED.reset(token)
        return {"graph": graph, "checkpoint": name, "version": g.revision, "variables": sorted(new)}

    @staticmethod
    def _restored_values(g: Graph, entries: Mapping[str, Any], index: bytes, data: bytes) -> dict[str, np.ndarray]:
        """Every variable's value from the checkpoint, or TensorFlow's error (nothing assigned)."""
        for var in g.variables.values():
            entry = entries.get(tensor_name(var.name))
            if entry is None:
                raise Conflict(_NOT_FOUND.format(key=tensor_name(var.name)), code="checkpoint_mismatch",
                               exception="NotFoundError", variable=var.name)
            if tuple(entry.shape) != tuple(var.shape):
                raise Conflict(f"Restoring from checkpoint failed: variable {var.name} has shape {list(var.shape)} "
                               f"and the checkpoint holds shape {list(entry.shape)}. Assign requires shapes of both "
                               f"tensors to match. lhs shape= {list(var.shape)} rhs shape= {list(entry.shape)}",
                               code="checkpoint_mismatch", exception="InvalidArgumentError", variable=var.name)
            if entry.dtype != var.dtype:
                raise Conflict(f"Restoring from checkpoint failed: tensor_name = {tensor_name(var.name)}; expected "
                               f"dtype {var.dtype} does not equal original dtype {entry.dtype}",
                               code="checkpoint_mismatch", exception="InvalidArgumentError", variable=var.name)
        read = decode_bundle(index, data, [tensor_name(v) for v in g.variables])
        return {v: read[tensor_name(v)] for v in g.variables}

    # ---- history -------------------------------------------------------------------------
    def _protected(self, graph: str) -> set[int]:
        metas = (self.files.meta(graph, name) for name in self.files.names(graph))
        return {m["version"] for m in metas if m is not None and isinstance(m.get("version"), int)}

    def _on_commit(self, g: Graph, variables: list[str]) -> None:
        record: dict[str, Any] = {"version": g.revision, "time": time.time(), "cause": COMMIT_CAUSE.get() or "commit",
                                  "variables": sorted(variables)[:100]}
        restored = _RESTORED.get()
        if restored is not None:
            record["checkpoint"] = restored
        try:
            self.history.append(g.name, record, lambda: self._protected(g.name))
        except Exception:  # the commit stands; only its history record is lost
            log.exception("could not record version %s of graph %r", g.revision, g.name)

    def versions(self, graph: str) -> dict[str, Any]:
        g = self.plane.graph(graph)
        protected = self._protected(graph)
        return {"graph": graph, "version": g.revision, "versions": self.history.records(graph, protected),
                "checkpoints": [{"name": m["name"], "version": m["version"]} for m in self.listing(graph)]}
