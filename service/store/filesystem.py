"""The embedded store: a state directory on local disk.

Layout, per graph::

    graphs/<graph>/manifest.json      structure + which blob holds each variable/record set
    graphs/<graph>/blobs/<uuid>.npy   one variable value (immutable once written)
    graphs/<graph>/blobs/<uuid>.json  one layer's conditional losses and pending updates

A commit writes the new blobs (fsync), then the manifest to a temp file (fsync) and renames
it over the old one (fsync of the directory): the rename is the commit point. Blobs that no
manifest references (left by a crash, or replaced) are deleted afterwards and on load.
Directories are fsynced into their parents when created, so a graph's first commit is as
durable as the later ones.

One process owns a state directory at a time: ``load`` takes an exclusive lock on
``<root>/.lock`` (waiting while another live process holds it; the kernel releases it when
that process dies, even by SIGKILL). Without it, a second server's load would delete the
blobs the first one has written but not yet committed. Several stores of one process on one
directory share the process's hold.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from service.core.graph import Graph
from service.errors import StoreUnavailable
from service.store.base import StateStore
from service.store.codec import graph_from_json, graph_to_json, records_from_json, records_to_json

__all__ = ["FilesystemStore"]

log = logging.getLogger("layerserve.store")


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dir(path: Path) -> None:
    """Create ``path`` (and missing parents), each entry made durable in its parent."""
    if path.is_dir():
        return
    _make_dir(path.parent)
    path.mkdir(exist_ok=True)
    _fsync_dir(path.parent)


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
        # graph -> {"variables": {name: blob}, "records": {layer id: blob}}, as last committed
        self._blobs: dict[str, dict[str, dict[str, str]]] = {}

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
        self._acquire()
        graphs = {}
        for directory in sorted((self.root / "graphs").iterdir()):
            manifest = directory / "manifest.json"
            if manifest.is_file():
                graph = self._load_graph(directory, json.loads(manifest.read_text()))
                graphs[graph.name] = graph
            self._remove_unreferenced(directory)
        return graphs

    def _load_graph(self, directory: Path, manifest: dict[str, Any]) -> Graph:
        graph = graph_from_json(manifest["graph"])
        blobs = manifest["blobs"]
        values = {name: np.load(directory / "blobs" / blob, allow_pickle=False)
                  for name, blob in blobs["variables"].items()}
        graph.set_values(values)
        for layer_id, blob in blobs["records"].items():
            records_from_json(graph.layers[layer_id], json.loads((directory / "blobs" / blob).read_text()))
        self._blobs[graph.name] = blobs
        self.stamper.remember(graph)
        return graph

    def _remove_unreferenced(self, directory: Path) -> None:
        for tmp in directory.glob("*.tmp"):
            tmp.unlink()
        blob_dir = directory / "blobs"
        if not blob_dir.is_dir():
            return
        known = self._blobs.get(directory.name, {"variables": {}, "records": {}})
        referenced = set(known["variables"].values()) | set(known["records"].values())
        for path in blob_dir.iterdir():
            if path.name not in referenced:
                path.unlink()

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
            raise StoreUnavailable(f"could not write the state directory: {exc.strerror or exc}") from exc

    def _write(self, graph: Graph, variables: Iterable[str], layers: Iterable[str]) -> None:
        directory = self._graph_dir(graph.name)
        blob_dir = directory / "blobs"
        _make_dir(blob_dir)
        old = self._blobs.get(graph.name, {"variables": {}, "records": {}})
        new = {"variables": {n: b for n, b in old["variables"].items() if n in graph.variables},
               "records": {i: b for i, b in old["records"].items() if i in graph.layers}}
        for name in set(variables):
            if name in graph.variables:
                new["variables"][name] = self._write_array(blob_dir, graph.values[name])
        for layer_id in set(layers):
            if layer_id in graph.layers:
                new["records"][layer_id] = self._write_records(blob_dir, graph, layer_id)
        manifest = json.dumps({"format": 1, "graph": graph_to_json(graph), "blobs": new}).encode()
        tmp = directory / "manifest.json.tmp"
        _fsync_write(tmp, manifest)
        _fsync_dir(blob_dir)
        os.replace(tmp, directory / "manifest.json")
        _fsync_dir(directory)
        self._blobs[graph.name] = new
        self._remove_replaced(blob_dir, old, new)

    def _write_array(self, blob_dir: Path, value: np.ndarray) -> str:
        blob = f"{uuid.uuid4().hex}.npy"
        with open(blob_dir / blob, "wb") as handle:
            np.save(handle, np.asarray(value, order="C"), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        return blob

    def _write_records(self, blob_dir: Path, graph: Graph, layer_id: str) -> str:
        blob = f"{uuid.uuid4().hex}.json"
        _fsync_write(blob_dir / blob, json.dumps(records_to_json(graph.layers[layer_id])).encode())
        return blob

    @staticmethod
    def _remove_replaced(blob_dir: Path, old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> None:
        keep = set(new["variables"].values()) | set(new["records"].values())
        for blob in set(old["variables"].values()) | set(old["records"].values()):
            if blob not in keep:
                (blob_dir / blob).unlink(missing_ok=True)
