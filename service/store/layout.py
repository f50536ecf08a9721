"""How a graph lies in the state directory, read back into a graph.

Format 3 (written now), per graph directory::

    manifest.json        the snapshot: revision, entry versions, definitions (``G``, ``L:<id>``),
                         where each value lies in the pack, each layer's record index, the
                         model blobs, and the journal that follows the snapshot
    blobs/<uuid>.pack    the snapshot's variable values, raw, back to back
    blobs/<uuid>.log     the journal: every commit since the snapshot (see ``journal``)
    blobs/<uuid>.json    record objects (see ``records``)
    blobs/<sha256>.bin   a blob a definition refers to (a custom layer's model, a program)

Formats 1 and 2 (one ``.npy`` file per value, the whole graph in the manifest) are still read;
the first commit after such a load writes a format 3 snapshot.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Variable
from layerserve.server.store import journal
from layerserve.server.store.codec import blob_name, graph_from_json
from layerserve.server.store.entries import assemble
from layerserve.server.store.records import StoredRecords, decode_object, from_index, index_objects

__all__ = ["Damaged", "Loaded", "load_graph", "read"]

Reader = Callable[[Path], bytes]


class Damaged(Exception):
    """A file of a graph that cannot be read, named by path."""

    def __init__(self, path: Path, reason: object) -> None:
        super().__init__(f"{path}: {reason}")


@dataclass
class Loaded:
    """A graph as read, and what its directory's files hold for the store."""

    graph: Graph
    records: dict[str, StoredRecords]
    models: frozenset[str]
    files: frozenset[str] = frozenset()  # pack and journal (format 3) or value files (older)
    journal: str = ""
    journal_end: int = 0  # where the journal's last whole record ends
    journal_records: int = 0
    snapshot_bytes: int = 0
    current: bool = True  # written in format 3 (else the next commit writes a snapshot)
    torn: bool = False  # the journal holds a cut-short record after ``journal_end``


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Damaged(path, exc.strerror or exc) from None


def load_graph(directory: Path, manifest: dict[str, Any]) -> Loaded:
    if manifest.get("format") == 3:
        return _Format3(directory, manifest).load()
    return _load_older(directory, manifest)


def _records(blob_dir: Path, indexes: dict[str, Any]) -> dict[str, StoredRecords]:
    return {layer_id: from_index(index, {n: decode_object(read(blob_dir / n)) for n in index_objects(index)})
            for layer_id, index in indexes.items()}


def _models(blob_dir: Path, digests: Any) -> dict[str, str]:
    return {d: base64.b64encode(read(blob_dir / blob_name(d))).decode() for d in digests}


def _checked(path: Path, value: np.ndarray, variable: Variable | None) -> np.ndarray:
    """A stored value must have the shape and dtype its variable declares."""
    if variable is not None and (tuple(value.shape) != tuple(variable.shape) or value.dtype.name != variable.dtype):
        raise Damaged(path, f"holds a {value.dtype.name} array of shape {list(value.shape)}; variable "
                            f"{variable.name!r} is {variable.dtype} of shape {list(variable.shape)}")
    return value


class _Format3:
    """A snapshot, then its journal's records in order."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.blob_dir, self.manifest = directory / "blobs", manifest
        self.revision: int = manifest["revision"]
        self.versions: dict[str, int] = dict(manifest["versions"])
        self.table: dict[str, Any] = dict(manifest["entries"])
        self.indexes: dict[str, Any] = dict(manifest["records"])
        self.models: set[str] = set(manifest["models"])
        pack = manifest["values"]["file"]
        # variable -> (file, offset, length, dtype, shape)
        self.where = {n: (pack, *spot) for n, spot in manifest["values"]["index"].items()}

    def load(self) -> Loaded:
        name = self.manifest["journal"]
        data = journal.mapped(self.blob_dir / name)
        end = count = 0
        try:
            for record in journal.records(data):
                self._replay(record, name)
                end, count = record.end, count + 1
        except ValueError as exc:
            raise Damaged(self.blob_dir / name, exc) from None
        values = self._values({name: data})
        for field_name, stored in _records(self.blob_dir, self.indexes).items():
            self.table[f"R:{field_name}"] = stored
        graph = assemble(self.manifest["name"], self.revision, self.versions, {**self.table, **values},
                         _models(self.blob_dir, self.models))
        for key, value in values.items():
            where = self.where[key[2:]]
            _checked(self.blob_dir / where[0], value, graph.variables.get(key[2:]))
        records = {i: self.table[f"R:{i}"] for i in self.indexes}
        return Loaded(graph, records, frozenset(self.models), frozenset({self.manifest["values"]["file"], name}),
                      journal=name, journal_end=end, journal_records=count,
                      snapshot_bytes=self.manifest["bytes"], torn=end < len(data))

    def _replay(self, record: journal.Record, name: str) -> None:
        header = record.header
        if header.get("base", header["revision"] - 1) != self.revision or header["revision"] <= self.revision:
            raise Damaged(self.blob_dir / name, f"a record of revision {header['revision']} follows {self.revision}")
        self.revision = revision = header["revision"]
        for key, obj in header["entries"].items():
            self.table[key], self.versions[key] = obj, revision
        for key in header["removed"]:
            self.table.pop(key, None)
            self.versions.pop(key, None)
            if key.startswith("V:"):
                self.where.pop(key[2:], None)
            elif key.startswith("R:"):
                self.indexes.pop(key[2:], None)
        for variable, (offset, length, dtype, shape) in header["values"].items():
            self.where[variable] = (name, record.payload + offset, length, dtype, shape)
            self.versions[f"V:{variable}"] = revision
        for variable, stamp in header.get("stamps", {}).items():  # values a write-behind record took along
            self.versions[f"V:{variable}"] = stamp
        for layer_id, index in header["records"].items():
            self.versions[f"R:{layer_id}"] = revision
            if index is None:
                self.indexes.pop(layer_id, None)
            else:
                self.indexes[layer_id] = index
        if "models" in header:
            self.models = set(header["models"])

    def _values(self, opened: dict[str, memoryview]) -> dict[str, np.ndarray]:
        values = {}
        for variable, (file, offset, length, dtype, shape) in self.where.items():
            if file not in opened:
                opened[file] = journal.mapped(self.blob_dir / file)
            try:
                values[f"V:{variable}"] = journal.read_array(opened[file], offset, length, dtype, shape)
            except (ValueError, TypeError) as exc:
                raise Damaged(self.blob_dir / file, f"variable {variable!r}: {exc}") from None
        return values


def _load_older(directory: Path, manifest: dict[str, Any]) -> Loaded:
    """Formats 1 and 2: the whole graph in the manifest, one ``.npy`` file per value."""
    blob_dir = directory / "blobs"
    blobs = manifest["blobs"]
    models = blobs.get("models", [])  # none before format 2: configs held them inline
    graph = graph_from_json(manifest["graph"], _models(blob_dir, models))
    graph.set_values({name: _load_value(blob_dir / blob, graph.variables.get(name))
                      for name, blob in blobs["variables"].items()})
    records = _records(blob_dir, blobs["records"])
    for layer_id, stored in records.items():
        losses, updates = stored.live()
        graph.layers[layer_id].losses, graph.layers[layer_id].updates = deque(losses), deque(updates)
    return Loaded(graph, records, frozenset(models), frozenset(blobs["variables"].values()), current=False)


def _load_value(path: Path, variable: Variable | None) -> np.ndarray:
    try:
        value: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise Damaged(path, exc) from None
    return _checked(path, value, variable)
