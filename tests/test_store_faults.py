"""The state directory when files go wrong: a failed write leaves nothing behind, a damaged
graph is reported by file while the others are served (and its files are kept), a value of the
wrong shape is not loaded, and readiness says when the directory cannot be written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np

from layerserve.server.store import journal
from tests.server import ServerProcess
from tests.test_hostile import assert_error


def _dense(server: ServerProcess, graph: str, units: int = 2, width: int = 3) -> httpx.Client:
    http = httpx.Client(base_url=f"{server.url}/v1/graphs/{graph}", timeout=30)
    assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": units}}).status_code == 201
    return http


def _manifest(state: Path, graph: str) -> dict:  # type: ignore[type-arg]
    return json.loads((state / "graphs" / graph / "manifest.json").read_text())  # type: ignore[no-any-return]


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.iterdir()} if directory.is_dir() else {}


def test_a_failed_write_leaves_no_partial_blob(tmp_path: Path) -> None:
    """Writes past 1 MiB fail as on a full disk: the 2 MiB kernel's half-written bytes go."""
    server = ServerProcess(tmp_path / "state", max_file_bytes=2**20).start()
    try:
        http = _dense(server, "full", units=512)
        blobs = server.state_dir / "graphs" / "full" / "blobs"
        before = _files(blobs)
        assert_error(http.post("/layers/fc/build", json={"input_shape": [None, 1024]}), 503, "store_unavailable")
        assert _files(blobs) == before  # before: the partial .npy stayed until a restart
        small = http.post("/layers/fc/build", json={"input_shape": [None, 4]})
        assert small.status_code == 200, small.text  # what fits is still written
        http.close()
    finally:
        server.stop()


def _two_graphs(tmp_path: Path) -> tuple[ServerProcess, Path]:
    server = ServerProcess(tmp_path / "state").start()
    for graph in ("good", "bad"):
        http = _dense(server, graph)
        assert http.post("/layers/fc/build", json={"input_shape": [None, 3]}).status_code == 200
        http.close()
    server.stop()
    return server, server.state_dir / "graphs" / "bad"


def _kernel_file(directory: Path) -> tuple[Path, list[journal.Record]]:
    """The file that holds the kernel's value (the snapshot's pack, or the journal), and the
    journal's records."""
    manifest = json.loads((directory / "manifest.json").read_text())
    log = directory / "blobs" / manifest["journal"]
    records = list(journal.records(log.read_bytes()))
    if any("kernel" in name for record in records for name in record.header["values"]):
        return log, records
    return directory / "blobs" / manifest["values"]["file"], records


def _assert_bad_graph_reported(server: ServerProcess, path: Path) -> None:
    good = httpx.get(f"{server.url}/v1/graphs/good/layers/fc/weights")
    assert good.status_code == 200, good.text  # the other graph is served
    error = assert_error(httpx.get(f"{server.url}/v1/graphs/bad/layers/fc"), 503, "graph_damaged")
    assert str(path) in error["message"], error["message"]
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["ready"] is True and str(path) in ready["damaged_graphs"]["bad"]


def test_an_unreadable_file_takes_only_its_graph_out(tmp_path: Path) -> None:
    server, bad = _two_graphs(tmp_path)
    blob, _ = _kernel_file(bad)
    blob.write_bytes(b"not an array")
    server.start()  # before: the whole server never became ready
    try:
        _assert_bad_graph_reported(server, blob)
        assert blob.read_bytes() == b"not an array"  # kept for whoever repairs it
        created = httpx.post(f"{server.url}/v1/graphs/bad/layers", json={"class": "Dense", "config": {"units": 1}})
        assert_error(created, 503, "graph_damaged")  # nothing overwrites the damaged graph
    finally:
        server.stop()


def test_a_value_of_another_shape_is_not_loaded(tmp_path: Path) -> None:
    server, bad = _two_graphs(tmp_path)
    blob, records = _kernel_file(bad)
    assert blob.suffix == ".log"  # the build's commit: a journal record, rewritten whole and valid
    blob.write_bytes(b"")
    end = 0
    for record in records:
        values = {name: [0, 280, "float64", [5, 7]] if "kernel" in name else None for name in record.header["values"]}
        header = {**record.header, "values": {n: v for n, v in values.items() if v is not None}}
        end = journal.append(blob, end, json.dumps(header).encode(), [np.zeros((5, 7)).tobytes()], sync=False)
    server.start()
    try:
        _assert_bad_graph_reported(server, blob)  # before: loaded silently, (5, 7) float64 as a (3, 2) kernel
    finally:
        server.stop()


def test_a_deleted_manifest_is_reported_and_its_blobs_kept(tmp_path: Path) -> None:
    server, bad = _two_graphs(tmp_path)
    (bad / "manifest.json").unlink()
    blobs = sorted(p.name for p in (bad / "blobs").iterdir())
    server.start()
    try:
        _assert_bad_graph_reported(server, bad / "manifest.json")  # before: 404, the graph gone
        assert sorted(p.name for p in (bad / "blobs").iterdir()) == blobs  # before: deleted at load
    finally:
        server.stop()


def test_readiness_fails_while_the_state_dir_cannot_be_written(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", max_file_bytes=0).launch()
    try:
        deadline, ready = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=2)
                if ready.json().get("startup_error") is None and httpx.get(f"{server.url}/healthz").status_code == 200:
                    time.sleep(1.0)  # past start-up: the store is loaded, and still not ready
                    ready = httpx.get(f"{server.url}/readyz", timeout=2)
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None and ready.status_code == 503, ready.text if ready else None  # before: 200
    finally:
        server.stop()
