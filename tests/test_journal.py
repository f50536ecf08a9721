"""The state directory's journal: a commit appends what it changed (not the graph), a record a
crash cut short is ignored at any byte, a damaged record with more behind it is reported, the
journal is replaced by snapshots, and ``--fsync everysec`` keeps acknowledged commits through
``kill -9``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from layerserve.server.config import Settings
from layerserve.server.plane import DataPlane
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import SessionCache
from layerserve.server.store.filesystem import FilesystemStore
from tests.server import ServerProcess


def _plane(state: Path, **store: Any) -> DataPlane:
    return DataPlane(Settings(state_dir=str(state)), FilesystemStore(state, **store),
                     Executor(SessionCache(select_providers(["cpu"]), 16, 1)))


def _weights(v: float) -> list[np.ndarray]:
    return [np.full((3, 2), v, np.float32), np.full(2, -v, np.float32)]


def _kernel(state: Path) -> float:
    """The kernel's value as a new store loads it (all of it must be one version)."""
    store = FilesystemStore(state)
    try:
        graphs = store.load()
        assert not store.damaged, store.damaged
        kernel = graphs["g"].values["fc/kernel:0"]
    finally:
        store.close()
    assert np.all(kernel == kernel.flat[0]), kernel
    return float(kernel.flat[0])


def _journal(state: Path) -> Path:
    directory = state / "graphs" / "g"
    return directory / "blobs" / json.loads((directory / "manifest.json").read_text())["journal"]


def _two_versions(state: Path) -> int:
    """Graph ``g`` with a Dense at version 1, then 2; the journal's size before version 2."""
    plane = _plane(state)
    plane.create_layer("g", "Dense", {"units": 2}, name="fc")
    plane.build("g", "fc", [None, 3])
    plane.set_weights("g", "fc", _weights(1))
    size = _journal(state).stat().st_size
    plane.set_weights("g", "fc", _weights(2))
    plane.store.close()
    return size


def test_a_record_cut_at_any_byte_loads_as_the_commit_before(tmp_path: Path) -> None:
    template = tmp_path / "template"
    before = _two_versions(template)
    after = _journal(template).stat().st_size
    assert _kernel(template) == 2
    for cut in [*range(before, after, max(1, (after - before) // 40)), after - 1]:
        state = tmp_path / f"cut-{cut}"
        shutil.copytree(template, state)
        with open(_journal(state), "r+b") as handle:
            handle.truncate(cut)
        assert _kernel(state) == 1, cut
        plane = _plane(state)  # and the graph takes commits again after the torn record
        plane.set_weights("g", "fc", _weights(3))
        plane.store.close()
        assert _kernel(state) == 3, cut


def test_zeros_after_the_last_record_are_a_torn_append(tmp_path: Path) -> None:
    """A file system may keep a file's new size without its data after a power cut."""
    before = _two_versions(tmp_path)
    with open(_journal(tmp_path), "r+b") as handle:
        size = handle.seek(0, 2)
        handle.seek(before)
        handle.write(bytes(size - before))
    assert _kernel(tmp_path) == 1


def test_a_damaged_record_with_more_behind_it_is_reported(tmp_path: Path) -> None:
    before = _two_versions(tmp_path)
    journal = _journal(tmp_path)
    data = bytearray(journal.read_bytes())
    data[before - 3] ^= 0xFF  # inside the record of version 1, which version 2's follows
    journal.write_bytes(bytes(data))
    store = FilesystemStore(tmp_path)
    try:
        assert store.load() == {}
        assert str(journal) in store.damaged["g"] and "damaged" in store.damaged["g"]
    finally:
        store.close()
    assert journal.read_bytes() == data  # kept for whoever repairs it


def test_a_commit_appends_what_it_changed_not_the_graph(tmp_path: Path) -> None:
    """Item 11 of the bounded-work issue: a write to one layer of a 300-layer graph neither
    rewrites the manifest nor appends more than that layer's change."""
    plane = _plane(tmp_path)
    for k in range(300):
        plane.create_layer("g", "Dense", {"units": 2}, name=f"d{k}")
    plane.build("g", "d7", [None, 3])
    manifest = tmp_path / "graphs" / "g" / "manifest.json"
    text, size = manifest.read_bytes(), _journal(tmp_path).stat().st_size
    plane.set_weights("g", "d7", _weights(5))
    assert manifest.read_bytes() == text
    appended = _journal(tmp_path).stat().st_size - size
    assert 6 * 4 + 2 * 4 < appended < 600, appended  # the two values and a short header
    plane.store.close()


def test_snapshots_replace_the_journal(tmp_path: Path) -> None:
    plane = _plane(tmp_path, snapshot_every=3)
    plane.create_layer("g", "Dense", {"units": 2}, name="fc")
    plane.build("g", "fc", [None, 3])
    journals = set()
    for v in range(10):
        plane.set_weights("g", "fc", _weights(v))
        journals.add(_journal(tmp_path).name)
    assert len(journals) >= 3
    files = {p.name for p in (tmp_path / "graphs" / "g" / "blobs").iterdir()}
    assert len(files) == 2 and _journal(tmp_path).name in files  # the pack and the journal: the rest went
    plane.store.close()
    assert _kernel(tmp_path) == 9


def test_everysec_keeps_acknowledged_commits_through_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--fsync", "everysec").start()
    http = httpx.Client(base_url=f"{server.url}/v1/graphs/g", timeout=30)
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).status_code == 201
    assert http.post("/layers/fc/build", json={"input_shape": [None, 3]}).status_code == 200
    for v in range(1, 30):
        body = {"weights": [{"dtype": "float32", "shape": list(w.shape), "data": w.ravel().tolist()} for w in _weights(v)]}
        response = http.put("/layers/fc/weights", json=body)
        assert response.status_code == 200, response.text
    server.kill()  # at once: the last commits are with the operating system, maybe not on disk yet
    http.close()
    assert _kernel(server.state_dir) == 29
