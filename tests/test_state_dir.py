"""The state directory: one owner at a time, failed commits change nothing, exact round trips."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np

from layerserve.server.core.layer import ConditionalLoss, PendingUpdate
from layerserve.server.store.codec import array_from_json, array_to_json
from layerserve.server.store.filesystem import FilesystemStore
from tests.server import ROOT, ServerProcess
from tests.test_hostile import assert_error, tensor


def test_arrays_round_trip_exactly_including_scalars() -> None:
    for array in (np.asarray(np.float32(1.5)), np.arange(6, dtype=np.float16).reshape(2, 3)[:, ::2],
                  np.array([np.nan, -np.inf], np.float64)):
        back = array_from_json(array_to_json(array))
        assert back.shape == array.shape and back.dtype == array.dtype
        assert back.tobytes() == np.ascontiguousarray(array).tobytes()
    assert ConditionalLoss("r", back).ref == "r" and PendingUpdate("r", "v", back).variable == "v"


def test_a_second_process_waits_for_the_first(tmp_path: Path) -> None:
    """Another process holds the state directory: a store here cannot load until it exits."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    store = FilesystemStore(tmp_path, lock_poll_s=0.01)
    loaded = threading.Event()
    waiter = threading.Thread(target=lambda: (store.load(), loaded.set()), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert not loaded.is_set()  # the other process still holds the lock: this one cannot have loaded
    holder.stdin.close()  # the holder exits
    assert holder.wait(30) == 0
    waiter.join()
    assert loaded.is_set()
    store.close()


_HOLD = """
import sys
from layerserve.server.store.filesystem import FilesystemStore
store = FilesystemStore(sys.argv[1])
store.load()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_failed_commit_changes_nothing(tmp_path: Path) -> None:
    """The store cannot write (its blob directory is replaced by a file): 503, and the weights,
    in memory and after a restart, are the last committed ones."""
    server = ServerProcess(tmp_path / "state").start()
    http = httpx.Client(base_url=server.url + "/v1/graphs/faulty")
    try:
        assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 1}}).status_code == 201
        assert http.post("/layers/fc/build", json={"input_shape": [None, 2]}).status_code == 200
        old = [tensor("float32", [2, 1], [1, 2]), tensor("float32", [1], [3])]
        assert http.put("/layers/fc/weights", json={"weights": old}).status_code == 200
        before = http.get("/layers/fc/weights").json()
        blobs = server.state_dir / "graphs" / "faulty" / "blobs"
        blobs.rename(blobs.with_name("blobs.away"))
        blobs.write_bytes(b"")
        new = [tensor("float32", [2, 1], [4, 5]), tensor("float32", [1], [6])]
        assert_error(http.put("/layers/fc/weights", json={"weights": new}), 503, "store_unavailable")
        assert_error(http.post("/layers", json={"class": "Dense", "name": "other", "config": {"units": 1}}), 503)
        assert http.get("/layers/fc/weights").json() == before
        assert [layer["name"] for layer in http.get("/layers").json()["layers"]] == ["fc"]
        blobs.unlink()
        blobs.with_name("blobs.away").rename(blobs)
        server.stop()
        server.start()
        assert http.get("/layers/fc/weights").json() == before
        blobs.rename(blobs.with_name("blobs.away"))
        blobs.write_bytes(b"")
        assert_error(http.put("/layers/fc/weights", json={"weights": new}), 503, "store_unavailable")
        blobs.unlink()
        blobs.with_name("blobs.away").rename(blobs)
        # the same process writes again at once: the failed commit left no stale revision behind
        assert http.put("/layers/fc/weights", json={"weights": new}).status_code == 200
        assert http.post("/layers", json={"class": "Dense", "name": "other", "config": {"units": 1}}).status_code == 201
        server.stop()
        server.start()
        assert [w["data"] for w in http.get("/layers/fc/weights").json()["weights"]] == [[4.0, 5.0], [6.0]]
    finally:
        http.close()
        server.stop()
