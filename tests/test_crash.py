"""Crash safety: SIGKILL at random moments (state directory and Redis), and a crash at every
fsync of a commit.

Each checks, after a restart on the same state, that every variable holds one complete version
(never a kernel from one ``set_weights`` and a bias from another, never a moving mean from one
``run_updates`` and a moving variance from another), that a layer's recorded losses are whole
and in order, that each is the last acknowledged version or the one in flight, and so that no
acknowledged write was lost.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from layerserve.protocol import FRAME_CONTENT_TYPE, encode_frame, input_ref
from layerserve.server.core.graph import Graph
from layerserve.server.store import journal
from layerserve.server.store.filesystem import FilesystemStore
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.server import ROOT, ServerProcess
from tests.store_writer import RECORDS_CAP, record_input, records_plane, version_arrays

__all__ = ["run_kill_loop"]

KILLS = 20
LAYER = "/v1/graphs/crash/layers/w"
BN = "/v1/graphs/crash/layers/bn"
COUNTING = "/v1/graphs/crash/layers/counting"
FRAME = {"content-type": FRAME_CONTENT_TYPE}


def _version_of(kernel: np.ndarray, bias: np.ndarray) -> int:
    """The one version both variables hold; fails on a torn or unknown state."""
    version = int(kernel.flat[0])
    assert np.array_equal(kernel, version_arrays(version)[0]), "kernel mixes versions"
    assert np.array_equal(bias, version_arrays(version)[1]), f"bias is not from version {version}"
    return version


def _spread(version: int) -> int:
    return version % 5 + 1


def _batch(version: int) -> np.ndarray:
    """Rows ``version -/+ spread``: batch mean ``version``, variance ``spread**2`` (biased)."""
    k = _spread(version)
    return np.array([[version - k] * 3, [version + k] * 3], np.float32)


def _bn_version_of(weights: dict[str, np.ndarray]) -> int:
    """BatchNormalization with momentum 0: the moving statistics are the last batch's run, so
    the moving mean is the version and the moving variance must be that same version's."""
    mean, variance = weights["bn/moving_mean:0"], weights["bn/moving_variance:0"]
    version = int(mean.flat[0])
    assert np.array_equal(mean, np.full_like(mean, version)), f"moving mean mixes versions: {mean}"
    want = [np.full_like(variance, _spread(version) ** 2 * c) for c in (1, 2)]  # biased, or unbiased (n=2)
    assert any(np.array_equal(variance, w) for w in want), f"moving variance not from version {version}: {variance}"
    return version


def _recorded_versions(losses: list[tuple[str, float]]) -> list[int]:
    """The versions whose applies recorded ``losses`` (input ``record_input(v)`` records 6 v),
    checking that each loss is whole: its value is the one its input gives."""
    versions = [round(value / 6) for _, value in losses]
    assert losses == [(input_ref(record_input(v)), 6.0 * v) for v in versions], losses
    assert versions == sorted(set(versions)), f"records out of order: {versions}"
    return versions


def _ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


def _step(http: httpx.Client, version: int) -> None:
    """One version: the Dense layer's weights by ``set_weights``, then BatchNormalization's
    moving statistics by a training apply (a batch of mean ``version``) and ``run_updates``,
    then a recorded apply of the counting layer (input ``record_input(version)``)."""
    _ok(http.put(LAYER + "/weights", content=encode_frame({}, version_arrays(version)), headers=FRAME))
    _ok(http.post(BN + "/apply", content=encode_frame({"training": True}, [_batch(version)]), headers=FRAME))
    _ok(http.post(BN + "/updates:run", json={"inputs": None}))
    _ok(http.post(COUNTING + "/apply", content=encode_frame({}, [record_input(version)]), headers=FRAME))


class _Writer(threading.Thread):
    """Writes version after version until the server stops answering. Anything else that ends
    the stream (an error status, a wrong body) is kept in ``error``: the test fails on it."""

    def __init__(self, url: str, first: int) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=30.0)
        self.next, self.acked = first, first - 1
        self.first_ack = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                _step(self.http, self.next)
                self.acked, self.next = self.next, self.next + 1
                self.first_ack.set()
        except httpx.TransportError:
            pass  # killed: ``next`` is the version in flight
        except BaseException as exc:  # raised again in the test's thread
            self.error = exc
        finally:
            self.first_ack.set()
            self.http.close()


def _read_versions(url: str) -> tuple[tuple[int, int, int], list[int]]:
    """(the Dense layer's, the BatchNormalization layer's and the counting layer's versions),
    and the versions the counting layer holds records of."""
    found = []
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for path in (LAYER, BN):
            response = http.get(path + "/weights")
            assert response.status_code == 200, (path, response.status_code, response.text[:500])
            body = response.json()
            found.append({n: np.asarray(w["data"], dtype=w["dtype"]).reshape(w["shape"])
                          for n, w in zip(body["names"], body["weights"], strict=True)})
        losses = [(x["input"], x["value"]) for x in http.get(COUNTING + "/losses").json()["losses"]]
    recorded = _recorded_versions(losses)
    return (_version_of(found[0]["w/kernel:0"], found[0]["w/bias:0"]), _bn_version_of(found[1]),
            recorded[-1]), recorded


def _setup(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        assert http.post("/v1/graphs/crash/layers", json={"class": "Dense", "name": "w", "config": {"units": 5}}).is_success
        assert http.post(LAYER + "/build", json={"input_shape": [None, 6]}).is_success
        assert http.post("/v1/graphs/crash/layers", json={"class": "BatchNormalization", "name": "bn",
                                                          "config": {"momentum": 0.0}}).is_success
        assert http.post("/v1/graphs/crash/layers", json={"class": "Dense", "name": "counting", "config": {
            "units": 1, "activity_regularizer": {"l1": 1.0}}}).is_success
        assert http.post(COUNTING + "/build", json={"input_shape": [None, 6]}).is_success
        ones = [np.ones((6, 1), np.float32), np.zeros(1, np.float32)]
        _ok(http.put(COUNTING + "/weights", content=encode_frame({}, ones), headers=FRAME))
        _step(http, 0)


def _check_records(recorded: list[int], acked: set[int]) -> None:
    """No acknowledged record lost: the layer holds every acknowledged version from its oldest
    record on, and the last ``RECORDS_CAP`` of what it recorded, once it recorded that many."""
    lost = sorted(v for v in acked if v >= recorded[0] and v not in recorded)
    assert not lost, f"acknowledged records lost: {lost}"
    assert len(recorded) == RECORDS_CAP or recorded[0] == 0, recorded


def run_kill_loop(state: Path, kills: int, seed: int, store: str | None = None) -> dict[str, int]:
    """Write versions, SIGKILL the server at a random moment, restart, check; ``kills`` times.
    ``store``: a Redis URL (else the state directory). Returns the counts: kills survived,
    versions acknowledged, and how often a layer was found at the version in flight (sent,
    never acknowledged) after the restart."""
    rng = random.Random(seed)
    server = ServerProcess(state, "--max-records-per-layer", str(RECORDS_CAP), *(["--store", store] if store else []))
    _setup(server.start().url)
    last, acked, stats = (0, 0, 0), {0}, {"kills_survived": 0, "in_flight_found": 0}
    try:
        for _ in range(kills):
            writer = _Writer(server.url, max(last) + 1)
            writer.start()
            writer.first_ack.wait()  # the stream of writes is running
            time.sleep(rng.uniform(0.0, 0.02))  # then a random moment (not a timing assertion)
            server.kill()
            writer.join(60)
            assert not writer.is_alive(), "the writer kept going after the kill"
            if writer.error is not None:
                raise AssertionError(f"a write failed before the kill: {writer.error!r}") from writer.error
            server.start()
            found, recorded = _read_versions(server.url)
            for now, before in zip(found, last, strict=True):
                assert now in (writer.acked, writer.next) and now >= before, (found, writer.acked, writer.next)
                stats["in_flight_found"] += now == writer.next
            acked.update(range(max(last) + 1, writer.acked + 1))
            _check_records(recorded, acked)
            last = found
            stats["kills_survived"] += 1
    finally:
        server.stop()
    return {**stats, "versions_acknowledged": min(last)}


def test_sigkill_at_random_moments_keeps_one_complete_version(tmp_path: Path) -> None:
    stats = run_kill_loop(tmp_path / "state", KILLS, seed=5)
    assert stats["kills_survived"] == KILLS
    assert stats["versions_acknowledged"] >= KILLS  # every round acknowledged at least one write


def test_sigkill_with_the_redis_store(tmp_path: Path, redis_process: RedisProcess) -> None:  # noqa: F811
    """The same against Redis: a commit is one Lua script, so the server's death at any moment
    leaves the graph at one commit or the next, records included."""
    kills = KILLS // 2
    stats = run_kill_loop(tmp_path / "state", kills, seed=7, store=redis_process.url)
    assert stats["kills_survived"] == kills and stats["versions_acknowledged"] >= kills


def test_crash_at_every_fsync_of_a_commit(tmp_path: Path) -> None:
    """A commit appends to the journal; every fourth (here) writes a snapshot: a pack, the
    manifest, two directories. End the process at each of these fsyncs in turn."""
    state = tmp_path / "state"
    acked = 0
    for crash_at in range(1, 16):  # every point of two snapshot cycles and more
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


def _referenced(state: Path, graph: str) -> set[str]:
    """The files the graph's snapshot and journal name (pack, journal, record objects, model blobs)."""
    directory = state / "graphs" / graph
    manifest = json.loads((directory / "manifest.json").read_text())
    indexes, models = dict(manifest["records"]), manifest["models"]
    for record in journal.records((directory / "blobs" / manifest["journal"]).read_bytes()):
        indexes.update(record.header["records"])
        models = record.header.get("models", models)
    return {manifest["values"]["file"], manifest["journal"], *(f"{digest}.bin" for digest in models),
            *(name for index in indexes.values() if index is not None for name, _ in index["objects"])}


def _load(state: Path, graph: str) -> Graph:
    store = FilesystemStore(state)
    try:
        return store.load()[graph]
    finally:
        store.close()


def test_crash_at_every_fsync_of_a_recorded_apply_that_spills(tmp_path: Path) -> None:
    """Recorded applies keep their new records inline in the layer's index (a journal record);
    every so often one spills them into a record blob merged with an older one, which it then
    deletes (while older records are evicted). End the process at each fsync of such an apply: a load reads the records of
    the last completed apply, whole and in order, and no blob it does not name."""
    template = tmp_path / "template"
    plane = records_plane(str(template))
    for v in range(129):  # the next apply spills 65 inline records and merges them with the first 65
        plane.apply("records", "counting", [record_input(v)])
    plane.store.close()
    for crash_at in range(1, 6):  # the spill's fsyncs (blob, directory, journal), then the next applies'
        state = tmp_path / f"state{crash_at}"
        shutil.copytree(template, state)
        child = subprocess.run([sys.executable, "-m", "tests.store_writer", str(state), "129", str(crash_at), "records"],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert child.returncode == 137, child.stderr[-2000:]
        last_acked = max([128, *(int(line) for line in child.stdout.split())])
        layer = _load(state, "records").resolve("counting")
        recorded = _recorded_versions([(c.ref, float(c.value)) for c in layer.losses])
        assert recorded[-1] in (last_acked, last_acked + 1), (crash_at, recorded[-1], last_acked)
        assert recorded == list(range(recorded[-1] - RECORDS_CAP + 1, recorded[-1] + 1))
        assert {p.name for p in (state / "graphs" / "records" / "blobs").iterdir()} == _referenced(state, "records")
