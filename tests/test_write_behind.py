"""``--write-behind-s``: training steps answered before they are written. Each interval the
latest values are written as one journal record; a crash loses at most the steps since, never a
part of one; any other commit takes the kept steps along; SIGTERM writes them; a version's
number is never given out twice, and each variable keeps the version it changed at."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

import layerserve
import layerserve.compat.v1 as tf
from tests.server import ServerProcess
from tests.test_training_state import X, Y, _assert_state, _build, _reference_states, _stored


def _train(url: str, graph: str, steps: int) -> Any:
    """A fresh model on ``graph``, trained ``steps`` steps; its session."""
    layerserve.connect(url, graph=graph)
    x, y, train_op = _build()
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    for _ in range(steps):
        sess.run(train_op, {x: X, y: Y})
    return sess


def _layer_versions(url: str, graph: str) -> dict[str, int]:
    layers = httpx.get(f"{url}/v1/graphs/{graph}/layers", timeout=30).json()["layers"]
    return {layer["name"]: layer["version"] for layer in layers}


def _history(url: str, graph: str) -> list[int]:
    return [r["version"] for r in httpx.get(f"{url}/v1/graphs/{graph}/versions", timeout=30).json()["versions"]]


def test_steps_are_written_within_the_interval(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "0.2").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        _train(server.url, graph, 7)
        versions = _layer_versions(server.url, graph)
        time.sleep(1.5)  # several intervals: the steps are written
        server.kill()
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        got = _stored(restarted.url, graph)
        assert int(got["global_step:0"]) == 7
        _assert_state(got, _reference_states(restarted.url, 7)[7])
        assert _layer_versions(restarted.url, graph) == versions
    finally:
        restarted.stop()


def test_a_structure_commit_takes_the_kept_steps_along_with_their_versions(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "3600").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        _train(server.url, graph, 5)
        created = httpx.post(f"{server.url}/v1/graphs/{graph}/layers", timeout=30,
                             json={"class": "Dense", "name": "extra", "config": {"units": 2}})
        assert created.status_code == 201, created.text
        versions = _layer_versions(server.url, graph)
        assert versions["extra"] > max(v for k, v in versions.items() if k != "extra")  # the steps' are older
        server.kill()  # nothing was written by the interval: only the create's commit holds the steps
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        got = _stored(restarted.url, graph)
        assert int(got["global_step:0"]) == 5
        _assert_state(got, _reference_states(restarted.url, 5)[5])
        assert _layer_versions(restarted.url, graph) == versions
    finally:
        restarted.stop()


def test_a_checkpoint_writes_the_kept_steps_first(tmp_path: Path) -> None:
    """A checkpoint names a graph version: that version is on disk before the checkpoint exists."""
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "3600").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        _train(server.url, graph, 3)
        made = httpx.post(f"{server.url}/v1/graphs/{graph}/checkpoints", json={"name": "after-3"}, timeout=30)
        assert made.status_code == 201, made.text
        server.kill()
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        assert int(_stored(restarted.url, graph)["global_step:0"]) == 3
        described = httpx.get(f"{restarted.url}/v1/graphs/{graph}/checkpoints/after-3", timeout=30).json()
        assert described["version"] == int(httpx.get(f"{restarted.url}/v1/graphs/{graph}/versions", timeout=30)
                                           .json()["version"])
    finally:
        restarted.stop()


def test_sigterm_writes_the_kept_steps(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "3600").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        _train(server.url, graph, 6)
    finally:
        assert server.stop() == 0
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        assert int(_stored(restarted.url, graph)["global_step:0"]) == 6
    finally:
        restarted.stop()


def test_versions_lost_in_a_crash_are_not_listed_and_are_given_out_again_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "3600").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        _train(server.url, graph, 4)
        program = list(tf.get_default_graph().binding.programs.values())[-1]  # the training step's
        before = _history(server.url, graph)
        server.kill()
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        got = _stored(restarted.url, graph)
        assert int(got["global_step:0"]) == 0  # initialized, never trained on disk
        revision = int(httpx.get(f"{restarted.url}/v1/graphs/{graph}/versions", timeout=30).json()["version"])
        assert revision < max(before)
        assert max(_history(restarted.url, graph)) == revision
        with layerserve.Connection(restarted.url, graph=graph) as conn:
            conn.call("POST", f"/v1/graphs/{graph}/programs/{program}:run", {"feeds": ["x:0", "y:0"], "fetches": []},
                      tensors=[X, Y], accept_tensors=True, request_key="values")
        after = _history(restarted.url, graph)
        assert len(after) == len(set(after)) and max(after) == revision + 1
    finally:
        restarted.stop()


def test_kill_during_a_write_behind_loop_leaves_a_whole_number_of_steps(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "0.05").start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    acked, failures = [0], []
    try:
        layerserve.connect(server.url, graph=graph)
        x, y, train_op = _build()
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())

        def loop() -> None:
            try:
                for _ in range(10_000):
                    sess.run(train_op, {x: X, y: Y})
                    acked[0] += 1
            except (layerserve.exceptions.TransportError, OSError, ConnectionError):
                return
            except BaseException as exc:
                failures.append(exc)

        worker = threading.Thread(target=loop)
        worker.start()
        deadline = time.monotonic() + 60
        while acked[0] < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        worker.join(60)
        assert not worker.is_alive() and not failures, failures
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        got = _stored(restarted.url, graph)
        steps = int(got["global_step:0"])
        assert 0 <= steps <= acked[0] + 1, (acked[0], steps)
        _assert_state(got, _reference_states(restarted.url, steps)[steps])
    finally:
        restarted.stop()


def test_write_behind_with_a_shared_store_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "layerserve.server", "serve", "--store", "redis://127.0.0.1:1/0",
                           "--write-behind-s", "1"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "write_behind_s is for the state directory" in done.stderr
