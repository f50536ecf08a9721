"""The embedded store: a state directory on local disk.

Each graph is a snapshot plus a journal (layout: see ``layout``). A commit appends one record
to the graph's journal (what it changed: definitions, the new values, raw, and record indexes)
and fsyncs it: the fsync is the commit point, and its cost is what the commit changed, not what
the graph holds. When the journal outgrows the snapshot (or ``SNAPSHOT_RECORDS`` commits), the
commit writes a new snapshot instead: the values into a new pack file (fsync), then the
manifest to a temporary file (fsync) and renamed over the old one (fsync of the directory),
which starts a new, empty journal. A load reads the snapshot and replays the journal; a record
a crash cut short (its CRC does not check) was never acknowledged and is ignored. Record
objects and model blobs are files of their own, written and fsynced before the journal or
manifest names them. Files that nothing references (left by a crash, or replaced) are deleted
afterwards and on load. Directories are fsynced into their parents when created.

``write_behind_s`` > 0 answers value-only commits (training steps) before writing them, and
writes each graph's latest such state every that many seconds (see ``write_behind``).

``fsync="everysec"`` writes each commit to the operating system before answering (it survives
the server's death, ``kill -9`` included) and fsyncs the journals once a second: a power cut
may lose the last second's commits, never tear one.

One process owns a state directory at a time: ``load`` takes an exclusive lock on
``<root>/.lock`` (waiting while another live process holds it; the kernel releases it when
that process dies, even by SIGKILL). Without it, a second server's load would delete the
files the first one has written but not yet committed. Several stores of one process on one
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.errors import StoreUnavailable
from layerserve.server.store import journal
from layerserve.server.store.base import StateStore
from layerserve.server.store.codec import blob_name
from layerserve.server.store.durable import PeriodicSync, fsync_dir, fsync_write
from layerserve.server.store.layout import Damaged, Loaded, load_graph
from layerserve.server.store.records import EMPTY, TAIL_BYTES, StoredRecords, plan
from layerserve.server.store.versions import Changes
from layerserve.server.store.write_behind import Kept, WriteBehind

__all__ = ["FilesystemStore"]

log = logging.getLogger("layerserve.store")

# Records inline in one graph's layer indexes, in array bytes, shared out among its recording
# layers (each gets at least MIN_LAYER_TAIL_BYTES): a layer's index is appended whole when its
# records change, and every snapshot holds all of them.
GRAPH_TAIL_BYTES = 64 * 1024
MIN_LAYER_TAIL_BYTES = 4 * 1024


# A snapshot is written when the journal holds more bytes than this and than the snapshot, or
# (by default) every this many commits: a load then replays at most about as much as the
# snapshot holds, and the snapshot's cost is spread over many commits.
SNAPSHOT_BYTES = 64 * 1024 * 1024
SNAPSHOT_RECORDS = 10_000


@dataclass
class _Committed:
    """What a graph's last commit left on disk."""

    records: dict[str, StoredRecords] = field(default_factory=dict)  # layer id -> its records
    models: frozenset[str] = frozenset()  # digests of the blobs the definitions refer to
    files: frozenset[str] = frozenset()  # the pack and the journal (or an older layout's value files)
    revision: int = 0  # the graph's revision on disk
    journal: str = ""
    journal_end: int = 0  # where its last commit's record ends
    journal_records: int = 0
    snapshot_bytes: int = 0
    snapshot_due: bool = True  # no snapshot in format 3 yet, or a journal whose end is in doubt

    def referenced(self) -> set[str]:
        return {*self.files, *(n for r in self.records.values() for n in r.names()), *map(blob_name, self.models)}

    def wants_snapshot(self, every: int) -> bool:
        return (self.snapshot_due or self.journal_records + 1 >= every
                or self.journal_end >= max(SNAPSHOT_BYTES, self.snapshot_bytes))

    @classmethod
    def loaded(cls, loaded: Loaded, manifest_bytes: int) -> _Committed:
        return cls(loaded.records, loaded.models, loaded.files, loaded.graph.revision, loaded.journal,
                   loaded.journal_end, loaded.journal_records, loaded.snapshot_bytes + manifest_bytes,
                   snapshot_due=not loaded.current or loaded.torn)


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
    def __init__(self, root: str | os.PathLike[str], lock_poll_s: float = 0.1, *,
                 fsync: Literal["always", "everysec"] = "always", snapshot_every: int = SNAPSHOT_RECORDS,
                 write_behind_s: float = 0.0) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        _make_dir(self.root / "graphs")
        self.lock_poll_s = lock_poll_s
        self._lock_fd: int | None = None
        self._committed: dict[str, _Committed] = {}  # graph -> as last committed
        self._later = PeriodicSync(1.0) if fsync == "everysec" else None
        self.snapshot_every = snapshot_every
        self._behind = WriteBehind(write_behind_s, self._write_kept) if write_behind_s > 0 else None
        self._graph_locks: dict[str, threading.Lock] = {}  # one writer of a graph's files at a time
        self._graph_locks_lock = threading.Lock()

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
        if self._behind is not None:
            self._behind.close()
        if self._later is not None:
            self._later.close()
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
                raise Damaged(manifest, "missing, while the graph's blobs are there")
            return None
        try:
            text = manifest.read_bytes()
            content = json.loads(text)
        except (OSError, ValueError) as exc:
            raise Damaged(manifest, exc) from None
        try:
            loaded = load_graph(directory, content)
        except Damaged:
            raise
        except Exception as exc:  # a manifest of the wrong structure
            raise Damaged(manifest, f"{type(exc).__name__}: {exc}") from None
        self._committed[loaded.graph.name] = _Committed.loaded(loaded, len(text))
        self.stamper.remember(loaded.graph, loaded.models)
        return loaded.graph

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
        """After a failed commit: the files it wrote (maybe partly) go, so a full disk gets its
        space back at once. The caller holds the graph's lock: no other commit is writing here."""
        try:
            self._remove_unreferenced(self._graph_dir(name))
        except OSError as exc:
            log.warning("could not remove the files of a failed commit of graph %s: %s", name, exc)

    def healthy(self) -> bool:
        """Readiness: the state directory takes a write (and its fsync) right now."""
        probe = self.root / ".ready-probe"
        try:
            fsync_write(probe, b"1")
            probe.unlink()
        except OSError as exc:
            log.warning("state directory %s is not writable: %s", self.root, exc)
            return False
        return self._behind is None or self._behind.failure is None

    # ---- commit ------------------------------------------------------------------------
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        if self._lock_fd is None:
            raise StoreUnavailable("the state directory is not loaded (and locked) by this process")
        stamped = self.stamper.saved(graph.name), graph.revision, dict(graph.versions)
        changes = self.stamp(graph, variables, layers)
        if changes.empty:
            return
        with self._graph_lock(graph.name):
            old = self._committed.get(graph.name, _Committed())
            if self._may_keep(changes, old):
                assert self._behind is not None
                self._behind.keep(graph, changes)
                return
            kept = self._behind.take(graph.name) if self._behind is not None else None
            try:
                self._write(graph, changes, old, kept)
            except OSError as exc:  # disk full, I/O error: nothing was committed, and the stamps go back
                if kept is not None:  # taken from write-behind: it stays acknowledged and unwritten
                    assert self._behind is not None
                    self._behind.give_back(graph.name, kept)
                saved, graph.revision, graph.versions = stamped
                self.stamper.restore(graph.name, saved)
                self._cut_journal(graph.name, old)
                self._discard_uncommitted(graph.name)
                raise StoreUnavailable(f"could not write the state directory: {exc.strerror or exc}") from exc

    def _graph_lock(self, name: str) -> threading.Lock:
        with self._graph_locks_lock:
            return self._graph_locks.setdefault(name, threading.Lock())

    def _may_keep(self, changes: Changes, old: _Committed) -> bool:
        """Whether the commit may be answered before it is written: write-behind is on and has
        not failed, the commit changes values only, and no snapshot is due."""
        return (self._behind is not None and self._behind.failure is None and old.revision > 0
                and not (changes.texts or changes.records or changes.removed or changes.blobs)
                and not old.wants_snapshot(self.snapshot_every))

    def flush(self, name: str) -> None:
        if self._behind is None:
            return
        try:
            self._write_kept(name)
        except OSError as exc:
            raise StoreUnavailable(f"could not write the state directory: {exc.strerror or exc}") from exc

    def _write_kept(self, name: str) -> None:
        """The graph's kept value commits as one journal record (the write-behind thread)."""
        assert self._behind is not None
        with self._graph_lock(name):
            kept = self._behind.take(name)
            if kept is None:
                return
            old = self._committed[name]
            changes = Changes(old.revision, kept.revision, values=sorted(kept.stamps))
            try:
                new = self._append(name, changes, old, kept.values, stamps=kept.stamps, models_changed=False)
            except OSError:
                self._behind.give_back(name, kept)
                self._cut_journal(name, old)
                raise
            self._committed[name] = new

    def _cut_journal(self, name: str, old: _Committed) -> None:
        """After a failed commit: the journal back to its last commit's end, so the space a
        part of the record took is free again; where that fails, the next commit starts a new
        journal (a torn record must only ever be a journal's last)."""
        if not old.journal:
            return
        try:
            journal.truncate(self._graph_dir(name) / "blobs" / old.journal, old.journal_end)
        except OSError as exc:
            log.warning("could not cut the journal of graph %s back after a failed commit: %s", name, exc)
            self._committed[name] = replace(old, snapshot_due=True)

    def _write(self, graph: Graph, changes: Changes, old: _Committed, kept: Kept | None = None) -> None:
        directory = self._graph_dir(graph.name)
        blob_dir = directory / "blobs"
        _make_dir(blob_dir)
        records = {i: r for i, r in old.records.items() if i in graph.layers}
        for layer_id in changes.records:
            self._write_records(blob_dir, graph, layer_id, records)
        for digest, text in changes.blobs.items():
            _write_blob(blob_dir / blob_name(digest), text)
        models = (old.models - set(changes.dropped_blobs)) | changes.blobs.keys()
        new = replace(old, records=records, models=frozenset(models))
        if new.wants_snapshot(self.snapshot_every):
            new = self._snapshot(graph, new, directory)
        else:
            if new.referenced() - old.referenced():  # their directory entries must be durable first
                fsync_dir(blob_dir)
            stamps = {n: r for n, r in kept.stamps.items() if n not in changes.values and n in graph.values} if kept else {}
            changes = replace(changes, values=sorted({*changes.values, *stamps}))
            new = self._append(graph.name, changes, new, graph.values, stamps=stamps,
                               models_changed=new.models != old.models)
        self._committed[graph.name] = replace(new, revision=changes.revision)
        for name in old.referenced() - new.referenced():
            (blob_dir / name).unlink(missing_ok=True)

    def _append(self, name: str, changes: Changes, new: _Committed, values: Mapping[str, np.ndarray], *,
                stamps: dict[str, int], models_changed: bool) -> _Committed:
        """The commit as one journal record. It follows the revision on disk (``base``, when
        kept commits are in it), and ``stamps`` are the revisions of values that changed before
        this one."""
        spots, payload = _values(values, changes.values)
        records = {i: new.records[i].index_text if i in new.records else "null" for i in changes.records}
        stamped = {n: r for n, r in stamps.items() if r != changes.revision}
        header = (f'{{"revision":{changes.revision},"entries":{_spliced(changes.texts)},'
                  f'"removed":{json.dumps(changes.removed)},"values":{json.dumps(spots)},'
                  f'"records":{_spliced(records)}'
                  + (f',"models":{json.dumps(sorted(new.models))}' if models_changed else "")
                  + (f',"base":{new.revision}' if new.revision != changes.revision - 1 else "")
                  + (f',"stamps":{json.dumps(stamped)}' if stamped else "") + "}")
        path = self._graph_dir(name) / "blobs" / new.journal
        end = journal.append(path, new.journal_end, header.encode(), payload, sync=self._later is None)
        if self._later is not None:
            self._later.mark(path)
        return replace(new, revision=changes.revision, journal_end=end, journal_records=new.journal_records + 1)

    def _snapshot(self, graph: Graph, new: _Committed, directory: Path) -> _Committed:
        """Every value into a new pack, and a manifest that names it and a new, empty journal."""
        blob_dir = directory / "blobs"
        pack, log_name = f"{uuid.uuid4().hex}.pack", f"{uuid.uuid4().hex}.log"
        spots, payload = _values(graph.values, [n for n in graph.variables if n in graph.values])
        size = journal.write_at(blob_dir / pack, 0, payload, sync=True)
        journal.write_at(blob_dir / log_name, 0, [], sync=False)
        records = {i: r.index_text for i, r in new.records.items()}
        manifest = (f'{{"format":3,"name":{json.dumps(graph.name)},"revision":{graph.revision},'
                    f'"versions":{json.dumps(graph.versions)},"entries":{_spliced(self.stamper.definitions.of(graph))},'
                    f'"values":{{"file":{json.dumps(pack)},"index":{json.dumps(spots)}}},'
                    f'"records":{_spliced(records)},"models":{json.dumps(sorted(new.models))},'
                    f'"journal":{json.dumps(log_name)},"bytes":{size}}}').encode()
        tmp = directory / "manifest.json.tmp"
        fsync_write(tmp, manifest)
        fsync_dir(blob_dir)
        os.replace(tmp, directory / "manifest.json")
        fsync_dir(directory)
        return replace(new, files=frozenset({pack, log_name}), journal=log_name, journal_end=0, journal_records=0,
                       snapshot_bytes=size + len(manifest), snapshot_due=False)

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


def _values(values: Mapping[str, np.ndarray], names: Iterable[str]) -> tuple[dict[str, list[Any]], list[Any]]:
    """Where each value lies in the payload (offset, length, dtype, shape), and the payload's
    parts: the arrays' own buffers."""
    spots, payload, offset = {}, [], 0
    for name in names:
        value = values[name]
        view = journal.array_view(value)
        spots[name] = [offset, view.nbytes, value.dtype.name, list(value.shape)]
        payload.append(view)
        offset += view.nbytes
    return spots, payload


def _spliced(texts: dict[str, str]) -> str:
    """A JSON object of texts that are JSON already (no re-encoding)."""
    return "{" + ",".join(f"{json.dumps(k)}:{t}" for k, t in texts.items()) + "}"


def _write_blob(path: Path, text: str) -> None:
    """A content-addressed blob, once: renamed into place only when complete and fsynced, so a
    file under that name (one a failed commit left) holds the whole blob."""
    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    fsync_write(tmp, base64.b64decode(text))
    os.replace(tmp, path)
