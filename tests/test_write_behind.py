"""``--write-behind-s``: training steps answered before they are written. Each interval the
latest values are written as one journal record; a crash loses at most the steps since, never a
part of one; any other commit takes the kept steps along; SIGTERM writes them; a version's
number is never given out twice, and each variable keeps the version it changed at."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

import layerserve
import layerserve.compat.v1 as tf
from tests.server import ServerProcess
from tests.test_training_state import X, Y, _assert_state, _build, _reference_states, _stored, kill_during_training

T = TypeVar("T")


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


def _revision(url: str, graph: str) -> int:
    return int(httpx.get(f"{url}/v1/graphs/{graph}/versions", timeout=30).json()["version"])


def _then_end(state: Path, work: Callable[[str, str], T], *flags: str, kill: bool = True) -> tuple[int, str, T]:
    """A write-behind server on ``state``: ``work(url, graph)`` on a fresh graph, then kill -9
    (or SIGTERM, which must exit cleanly). Its port, the graph, and what ``work`` returned."""
    server = ServerProcess(state, *flags).start()
    graph = f"wb-{uuid.uuid4().hex[:8]}"
    try:
        result = work(server.url, graph)
        if kill:
            server.kill()
    finally:
        code = server.stop()
    assert kill or code == 0
    return server.port, graph, result


def _assert_trained(url: str, graph: str, steps: int) -> None:
    """The graph holds every variable as a single client has them after ``steps`` steps."""
    got = _stored(url, graph)
    assert int(got["global_step:0"]) == steps
    _assert_state(got, _reference_states(url, steps)[steps])


@contextmanager
def _restarted(state: Path, port: int) -> Iterator[str]:
    server = ServerProcess(state, port=port).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_steps_are_written_within_the_interval(tmp_path: Path) -> None:
    def work(url: str, graph: str) -> dict[str, int]:
        _train(url, graph, 7)
        time.sleep(1.5)  # several intervals: the steps are written
        return _layer_versions(url, graph)

    port, graph, versions = _then_end(tmp_path / "state", work, "--write-behind-s", "0.2")
    with _restarted(tmp_path / "state", port) as url:
        _assert_trained(url, graph, 7)
        assert _layer_versions(url, graph) == versions


def test_a_structure_commit_takes_the_kept_steps_along_with_their_versions(tmp_path: Path) -> None:
    def work(url: str, graph: str) -> dict[str, int]:
        _train(url, graph, 5)
        created = httpx.post(f"{url}/v1/graphs/{graph}/layers", timeout=30,
                             json={"class": "Dense", "name": "extra", "config": {"units": 2}})
        assert created.status_code == 201, created.text
        versions = _layer_versions(url, graph)
        assert versions["extra"] > max(v for k, v in versions.items() if k != "extra")  # the steps' are older
        return versions  # then killed: nothing was written by the interval, only the create's commit

    port, graph, versions = _then_end(tmp_path / "state", work, "--write-behind-s", "3600")
    with _restarted(tmp_path / "state", port) as url:
        _assert_trained(url, graph, 5)
        assert _layer_versions(url, graph) == versions


def test_a_checkpoint_writes_the_kept_steps_first(tmp_path: Path) -> None:
    """A checkpoint names a graph version: that version is on disk before the checkpoint exists."""
    def work(url: str, graph: str) -> None:
        _train(url, graph, 3)
        made = httpx.post(f"{url}/v1/graphs/{graph}/checkpoints", json={"name": "after-3"}, timeout=30)
        assert made.status_code == 201, made.text

    port, graph, _ = _then_end(tmp_path / "state", work, "--write-behind-s", "3600")
    with _restarted(tmp_path / "state", port) as url:
        assert int(_stored(url, graph)["global_step:0"]) == 3
        described = httpx.get(f"{url}/v1/graphs/{graph}/checkpoints/after-3", timeout=30).json()
        assert described["version"] == _revision(url, graph)


def test_sigterm_writes_the_kept_steps(tmp_path: Path) -> None:
    port, graph, _ = _then_end(tmp_path / "state", lambda url, graph: _train(url, graph, 6), "--write-behind-s",
                               "3600", kill=False)
    with _restarted(tmp_path / "state", port) as url:
        assert int(_stored(url, graph)["global_step:0"]) == 6


def test_versions_lost_in_a_crash_are_not_listed_and_are_given_out_again_once(tmp_path: Path) -> None:
    def work(url: str, graph: str) -> tuple[str, list[int]]:
        _train(url, graph, 4)
        program = list(tf.get_default_graph().binding.programs.values())[-1]  # the training step's
        return program, _history(url, graph)

    port, graph, (program, before) = _then_end(tmp_path / "state", work, "--write-behind-s", "3600")
    with _restarted(tmp_path / "state", port) as url:
        assert int(_stored(url, graph)["global_step:0"]) == 0  # initialized, never trained on disk
        revision = _revision(url, graph)
        assert revision < max(before)
        assert max(_history(url, graph)) == revision
        with layerserve.Connection(url, graph=graph) as conn:
            conn.call("POST", f"/v1/graphs/{graph}/programs/{program}:run", {"feeds": ["x:0", "y:0"], "fetches": []},
                      tensors=[X, Y], accept_tensors=True, request_key="values")
        after = _history(url, graph)
        assert len(after) == len(set(after)) and max(after) == revision + 1


def test_kill_during_a_write_behind_loop_leaves_a_whole_number_of_steps(tmp_path: Path) -> None:
    steps, acked = kill_during_training(tmp_path / "state", "--write-behind-s", "0.05", acknowledged=25)
    assert 0 <= steps <= acked + 1, (acked, steps)  # some answered steps may be lost, never part of one


def test_a_failed_background_write_makes_commits_synchronous_and_the_server_unready(tmp_path: Path) -> None:
    """Writes past 64 KiB fail as on a full disk: once the journal fills, a step is refused (503)
    instead of being answered and never written, and readiness says so."""
    server = ServerProcess(tmp_path / "state", "--write-behind-s", "0.05", max_file_bytes=64 * 1024).start()
    refused: Exception | None = None
    try:
        layerserve.connect(server.url, graph=f"wb-{uuid.uuid4().hex[:8]}")
        x, y, train_op = _build()
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        for _ in range(5_000):
            try:
                sess.run(train_op, {x: X, y: Y})
            except layerserve.exceptions.StoreUnavailableError as exc:
                refused = exc
                break
            time.sleep(0.002)
        assert refused is not None and "could not write the state directory" in str(refused), refused
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 503
    finally:
        server.stop()


def test_write_behind_with_a_shared_store_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "layerserve.server", "serve", "--store", "redis://127.0.0.1:1/0",
                           "--write-behind-s", "1"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "write_behind_s is for the state directory" in done.stderr
