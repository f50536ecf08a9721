"""Crash safety: SIGKILL at random moments, and a crash at every fsync of a commit.

Each checks, after a restart on the same state directory, that every variable of the layer
holds one complete version (never a kernel from one ``set_weights`` and a bias from another),
that it is the last acknowledged version or the one in flight, and so that no acknowledged
write was lost.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from client._protocol import FRAME_CONTENT_TYPE, encode_frame
from service.store.filesystem import FilesystemStore
from tests.server import ROOT, ServerProcess
from tests.store_writer import version_arrays

__all__ = ["run_kill_loop"]

KILLS = 20
LAYER = "/v1/graphs/crash/layers/w"


def _version_of(kernel: np.ndarray, bias: np.ndarray) -> int:
    """The one version both variables hold; fails on a torn or unknown state."""
    version = int(kernel.flat[0])
    assert np.array_equal(kernel, version_arrays(version)[0]), "kernel mixes versions"
    assert np.array_equal(bias, version_arrays(version)[1]), f"bias is not from version {version}"
    return version


class _Writer(threading.Thread):
    """Sends version after version until the server stops answering."""

    def __init__(self, url: str, first: int) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=30.0)
        self.next, self.acked = first, first - 1
        self.first_ack = threading.Event()

    def run(self) -> None:
        try:
            while True:
                response = _put(self.http, self.next)
                assert response.status_code == 200, response.text
                self.acked, self.next = self.next, self.next + 1
                self.first_ack.set()
        except httpx.TransportError:
            pass  # killed: ``next`` is the version in flight
        finally:
            self.first_ack.set()
            self.http.close()


def _read_version(url: str) -> int:
    with httpx.Client(base_url=url, timeout=30.0) as http:
        weights = http.get(LAYER + "/weights").json()["weights"]
    arrays = [np.asarray(w["data"], dtype=w["dtype"]).reshape(w["shape"]) for w in weights]
    return _version_of(*arrays)


def _put(http: httpx.Client, version: int) -> httpx.Response:
    return http.put(LAYER + "/weights", content=encode_frame({}, version_arrays(version)),
                    headers={"content-type": FRAME_CONTENT_TYPE})


def run_kill_loop(state: Path, kills: int, seed: int) -> dict[str, int]:
    """Write versions, SIGKILL the server at a random moment, restart, check; ``kills`` times.
    Returns the counts: kills survived, versions acknowledged, and how often the version in
    flight (sent, never acknowledged) was the one found after the restart."""
    rng = random.Random(seed)
    server = ServerProcess(state).start()
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/graphs/crash/layers", json={"class": "Dense", "name": "w", "config": {"units": 5}}).is_success
        assert http.post(LAYER + "/build", json={"input_shape": [None, 6]}).is_success
        assert _put(http, 0).is_success
    acked, stats = 0, {"kills_survived": 0, "in_flight_found": 0}
    try:
        for _ in range(kills):
            writer = _Writer(server.url, acked + 1)
            writer.start()
            writer.first_ack.wait()  # the stream of writes is running
            time.sleep(rng.uniform(0.0, 0.02))  # then a random moment (not a timing assertion)
            server.kill()
            writer.join()
            in_flight = writer.next
            server.start()
            found = _read_version(server.url)
            assert found in (writer.acked, in_flight) and found >= acked, (found, writer.acked, in_flight)
            stats["in_flight_found"] += found == in_flight
            acked = found
            stats["kills_survived"] += 1
    finally:
        server.stop()
    return {**stats, "versions_acknowledged": acked}


def test_sigkill_at_random_moments_keeps_one_complete_version(tmp_path: Path) -> None:
    stats = run_kill_loop(tmp_path / "state", KILLS, seed=5)
    assert stats["kills_survived"] == KILLS
    assert stats["versions_acknowledged"] >= KILLS  # every round acknowledged at least one write


def test_crash_at_every_fsync_of_a_commit(tmp_path: Path) -> None:
    """A commit writes several files (two blobs, the manifest): end the process between any two."""
    state = tmp_path / "state"
    acked = 0
    for crash_at in range(1, 12):  # five fsyncs per commit: every point of two commits and more
        child = subprocess.run([sys.executable, "-m", "tests.store_writer", str(state), str(acked + 1),
                                str(crash_at)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert child.returncode == 137, child.stderr[-2000:]
        printed = [int(line) for line in child.stdout.split()]
        last_acked = printed[-1] if printed else acked
        store = FilesystemStore(state)
        try:
            graph = store.load()["crash"]
        finally:
            store.close()
        found = _version_of(graph.values["w/kernel:0"], graph.values["w/bias:0"])
        assert found in (last_acked, last_acked + 1) and found >= acked, (crash_at, found, last_acked)
        blobs = list((state / "graphs" / "crash" / "blobs").iterdir())
        assert len(blobs) == 2, f"unreferenced blobs left after load: {sorted(p.name for p in blobs)}"
        acked = found
