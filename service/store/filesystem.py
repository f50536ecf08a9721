"""The embedded store: a state directory on local disk.

Layout, per graph::

    graphs/<graph>/manifest.json      structure, and which blobs hold the values, records and models
    graphs/<graph>/blobs/<uuid>.npy   one variable value (immutable once written)
    graphs/<graph>/blobs/<uuid>.json  some of a layer's conditional losses and pending updates
    graphs/<graph>/blobs/<sha256>.bin a blob a layer definition refers to (a custom layer's model)

A layer's records are its index in the manifest (the records since the last spill, inline,
and its record blobs by name: see ``records``), so that a recorded apply rewrites a few
records, not all of them. A commit writes the new blobs (fsync), then the manifest to a temp
file (fsync) and renames it over the old one (fsync of the directory): the rename is the
commit point. A commit that adds no blob (most recorded applies) skips the blob directory's
fsync. Blobs that no manifest references (left by a crash, or replaced) are deleted
afterwards and on load. Directories are fsynced into their parents when created, so a
graph's first commit is as durable as the later ones.

One process owns a state directory at a time: ``load`` takes an exclusive lock on
``<root>/.lock`` (waiting while another live process holds it; the kernel releases it when
that process dies, even by SIGKILL). Without it, a second server's load would delete the
blobs the first one has written but not yet committed. Several stores of one process on one
directory share the process's hold.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.errors import StoreUnavailable
from layerserve.server.store.base import StateStore
from layerserve.server.store.codec import blob_name, graph_from_json, graph_to_json
from layerserve.server.store.durable import fsync_dir, fsync_write
from layerserve.server.store.entries import graph_blobs
from layerserve.server.store.records import (
    EMPTY,
    TAIL_BYTES,
    StoredRecords,
    decode_object,
    from_index,
    index_objects,
    plan,
)

__all__ = ["FilesystemStore"]

log = logging.getLogger("layerserve.store")

# Records inline in one graph's manifest, in array bytes, shared out among its recording layers
# (each gets at least MIN_LAYER_TAIL_BYTES): the manifest is rewritten by every commit.
GRAPH_TAIL_BYTES = 64 * 1024
MIN_LAYER_TAIL_BYTES = 4 * 1024


@dataclass
class _Committed:
    """What a graph's last committed manifest refers to."""

    variables: dict[str, str] = field(default_factory=dict)  # variable -> blob
    records: dict[str, StoredRecords] = field(default_factory=dict)  # layer id -> its records
    models: frozenset[str] = frozenset()  # digests of the blobs the definitions refer to

    def referenced(self) -> set[str]:
        return {*self.variables.values(), *(n for r in self.records.values() for n in r.names()),
                *map(blob_name, self.models)}

    def manifest(self, graph: Graph) -> bytes:
        """Each layer's index is spliced in as the text it was stored as: no re-encoding."""
        records = ",".join(f"{json.dumps(i)}:{r.index_text}" for i, r in self.records.items())
        blobs = (f'{{"variables":{json.dumps(self.variables)},"models":{json.dumps(sorted(self.models))},'
                 f'"records":{{{records}}}}}')
        return f'{{"format":2,"graph":{json.dumps(graph_to_json(graph))},"blobs":{blobs}}}'.encode()



def _make_dir(path: Path) -> None:
    """Create ``path`` (and missing parents), each entry made durable in its parent."""
    if path.is_dir():
        return
    _make_dir(path.parent)
    path.mkdir(exist_ok=True)
    fsync_dir(path.parent)


# root -> [descriptor holding the flock, stores of this process using it]
_HOLDS: dict[Path, list[int]] = {}
_HOLDS_LOCK = threading.Lock()


def _wait_for_lock(root: Path, poll_s: float) -> int:
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    warned = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not warned:
                log.warning("state directory %s is locked by another process; waiting for it", root)
                warned = True
            time.sleep(poll_s)


class FilesystemStore(StateStore):
    def __init__(self, root: str | os.PathLike[str], lock_poll_s: float = 0.1) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        _make_dir(self.root / "graphs")
        self.lock_poll_s = lock_poll_s
        self._lock_fd: int | None = None
        self._committed: dict[str, _Committed] = {}  # graph -> as last committed

    def _graph_dir(self, name: str) -> Path:
        return self.root / "graphs" / name

    # ---- ownership ---------------------------------------------------------------------
    def _acquire(self) -> None:
        """Hold ``.lock`` exclusively for this process, waiting for another owner to exit.
        Stores of one process on one directory (a restart within a test) share the hold."""
        if self._lock_fd is not None:
            return
        with _HOLDS_LOCK:  # also serialises first acquisitions within this process
            held = _HOLDS.get(self.root)
            if held is None:
                held = _HOLDS[self.root] = [_wait_for_lock(self.root, self.lock_poll_s), 0]
            held[1] += 1
            self._lock_fd = held[0]

    def close(self) -> None:
        if self._lock_fd is None:
            return
        with _HOLDS_LOCK:
            held = _HOLDS[self.root]
            held[1] -= 1
            if held[1] == 0:
                os.close(held[0])  # closing the descriptor releases the flock
                del _HOLDS[self.root]
        self._lock_fd = None

    # ---- load --------------------------------------------------------------------------
    def load(self) -> dict[str, Graph]:
        """Every graph of the directory; one that cannot be read is reported (``damaged``, by
        file) and left untouched on disk, and the others are served."""
        self._acquire()
        graphs, self.damaged = {}, {}
        for directory in sorted((self.root / "graphs").iterdir()):
            try:
                graph = self._load_directory(directory)
            except Exception as exc:  # any unreadable file: this graph only
                self.damaged[directory.name] = str(exc)[:600]
                log.error("graph %s is not served: %s", directory.name, exc)
                continue
            if graph is not None:
                graphs[graph.name] = graph
            self._remove_unreferenced(directory)
        return graphs

    def _load_directory(self, directory: Path) -> Graph | None:
        manifest = directory / "manifest.json"
        if not manifest.is_file():
            blob_dir = directory / "blobs"
            if blob_dir.is_dir() and any(blob_dir.iterdir()):
                raise _Damaged(manifest, "missing, while the graph's blobs are there")
            return None
        try:
            content = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise _Damaged(manifest, exc) from None
        try:
            return self._load_graph(directory, content)
        except _Damaged:
            raise
        except Exception as exc:  # a manifest of the wrong structure
            raise _Damaged(manifest, f"{type(exc).__name__}: {exc}") from None

    def _load_graph(self, directory: Path, manifest: dict[str, Any]) -> Graph:
        blob_dir = directory / "blobs"
        blobs = manifest["blobs"]
        models = blobs.get("models", [])  # none before format 2: configs held them inline
        graph = graph_from_json(manifest["graph"], {d: base64.b64encode(_read(blob_dir / blob_name(d))).decode()
                                                    for d in models})
        graph.set_values({name: _load_value(blob_dir / blob, graph.variables.get(name))
                          for name, blob in blobs["variables"].items()})
        records = {}
        for layer_id, index in blobs["records"].items():
            stored = from_index(index, {n: decode_object(_read(blob_dir / n)) for n in index_objects(index)})
            losses, updates = stored.live()
            graph.layers[layer_id].losses, graph.layers[layer_id].updates = deque(losses), deque(updates)
            records[layer_id] = stored
        self._committed[graph.name] = _Committed(dict(blobs["variables"]), records, frozenset(models))
        self.stamper.remember(graph, models)
        return graph

    def _remove_unreferenced(self, directory: Path) -> None:
        for tmp in directory.glob("*.tmp"):
            tmp.unlink()
        blob_dir = directory / "blobs"
        if not blob_dir.is_dir():
            return
        referenced = self._committed.get(directory.name, _Committed()).referenced()
        for path in blob_dir.iterdir():
            if path.name not in referenced:
                path.unlink()

    def _discard_uncommitted(self, name: str) -> None:
        """After a failed commit: the blobs it wrote (maybe partly) go, so a full disk gets its
        space back at once. The caller holds the graph's lock: no other commit is writing here."""
        try:
            self._remove_unreferenced(self._graph_dir(name))
        except OSError as exc:
            log.warning("could not remove the blobs of a failed commit of graph %s: %s", name, exc)

    def healthy(self) -> bool:
        """Readiness: the state directory takes a write (and its fsync) right now."""
        probe = self.root / ".ready-probe"
        try:
            fsync_write(probe, b"1")
            probe.unlink()
        except OSError as exc:
            log.warning("state directory %s is not writable: %s", self.root, exc)
            return False
        return True

    # ---- commit ------------------------------------------------------------------------
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        if self._lock_fd is None:
            raise StoreUnavailable("the state directory is not loaded (and locked) by this process")
        stamped = self.stamper.saved(graph.name), graph.revision, dict(graph.versions)
        changes = self.stamp(graph, variables, layers)
        if changes.empty:
            return
        try:
            self._write(graph, changes.values, changes.records)
        except OSError as exc:  # disk full, I/O error: nothing was committed, and the stamps go back
            saved, graph.revision, graph.versions = stamped
            self.stamper.restore(graph.name, saved)
            self._discard_uncommitted(graph.name)
            raise StoreUnavailable(f"could not write the state directory: {exc.strerror or exc}") from exc

    def _write(self, graph: Graph, variables: Iterable[str], layers: Iterable[str]) -> None:
        directory = self._graph_dir(graph.name)
        blob_dir = directory / "blobs"
        _make_dir(blob_dir)
        old = self._committed.get(graph.name, _Committed())
        models = graph_blobs(graph)
        new = _Committed({n: b for n, b in old.variables.items() if n in graph.variables},
                         {i: r for i, r in old.records.items() if i in graph.layers}, frozenset(models))
        for name in set(variables):
            if name in graph.variables:
                new.variables[name] = self._write_array(blob_dir, graph.values[name])
        for layer_id in set(layers):
            if layer_id in graph.layers:
                self._write_records(blob_dir, graph, layer_id, new.records)
        for digest in new.models - old.models:
            _write_blob(blob_dir / blob_name(digest), models[digest])
        fresh = new.referenced() - old.referenced()
        tmp = directory / "manifest.json.tmp"
        fsync_write(tmp, new.manifest(graph))
        if fresh:  # their directory entries must be durable before a manifest names them
            fsync_dir(blob_dir)
        os.replace(tmp, directory / "manifest.json")
        fsync_dir(directory)
        self._committed[graph.name] = new
        for blob in old.referenced() - new.referenced():
            (blob_dir / blob).unlink(missing_ok=True)

    @staticmethod
    def _write_array(blob_dir: Path, value: np.ndarray) -> str:
        blob = f"{uuid.uuid4().hex}.npy"
        with open(blob_dir / blob, "wb") as handle:
            np.save(handle, np.asarray(value, order="C"), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        return blob

    @staticmethod
    def _write_records(blob_dir: Path, graph: Graph, layer_id: str, records: dict[str, StoredRecords]) -> None:
        """The layer's new records: inline in the index, and a new record blob when it spills."""
        layer = graph.layers[layer_id]
        budget = max(MIN_LAYER_TAIL_BYTES, min(TAIL_BYTES, GRAPH_TAIL_BYTES // len(records.keys() | {layer_id})))
        stored, written = plan(records.get(layer_id, EMPTY), layer.losses, layer.updates,
                               lambda: f"{uuid.uuid4().hex}.json", budget)
        for name, data in written:
            fsync_write(blob_dir / name, data)
        if stored.objects or stored.tail[0] or stored.tail[1]:
            records[layer_id] = stored
        else:
            records.pop(layer_id, None)


class _Damaged(Exception):
    """A file of a graph that cannot be read, named by path."""

    def __init__(self, path: Path, reason: object) -> None:
        super().__init__(f"{path}: {reason}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Damaged(path, exc.strerror or exc) from None


def _load_value(path: Path, variable: Any) -> np.ndarray:
    """A variable's stored value, which must have the shape and dtype the manifest declares."""
    try:
        value: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _Damaged(path, exc) from None
    if variable is not None and (tuple(value.shape) != tuple(variable.shape) or value.dtype.name != variable.dtype):
        raise _Damaged(path, f"holds a {value.dtype.name} array of shape {list(value.shape)}; variable "
                             f"{variable.name!r} is {variable.dtype} of shape {list(variable.shape)}")
    return value


def _write_blob(path: Path, text: str) -> None:
    """A content-addressed blob, once: renamed into place only when complete and fsynced, so a
    file under that name (one a failed commit left) holds the whole blob."""
    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    fsync_write(tmp, base64.b64decode(text))
    os.replace(tmp, path)
