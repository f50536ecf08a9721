"""TF1 graph mode's writes: BatchNormalization's UPDATE_OPS after kill -9, and runs from two
clients at once (each run's update applied exactly once)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import layerserve
import layerserve.compat.v1 as tf
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.server import ServerProcess

DATA = np.random.default_rng(5).standard_normal((6, 4, 4, 2)).astype(np.float32) + 0.5


def _moving_sequence(steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(moving_mean, moving_variance) after k runs of the update ops on DATA, k = 0..steps (fused rule)."""
    mean = DATA.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    n = DATA.size // 2
    var = (DATA.var(axis=(0, 1, 2), dtype=np.float64) * n / (n - 1)).astype(np.float32)
    decay = np.float32(1.0 - 0.99)
    m, v = np.zeros(2, np.float32), np.ones(2, np.float32)
    out = [(m, v)]
    for _ in range(steps):
        m, v = m - (m - mean) * decay, v - (v - var) * decay
        out.append((m, v))
    return out


def _build() -> tuple[tf.Tensor, list[tf.Operation]]:
    tf.reset_default_graph()
    img = tf.placeholder(tf.float32, [None, 4, 4, 2], name="img")
    tf.layers.batch_normalization(img, training=True)
    return img, tf.get_collection(tf.GraphKeys.UPDATE_OPS)


def _stored_moving(conn: layerserve.Connection) -> tuple[np.ndarray, np.ndarray]:
    values = {v.name: v.numpy() for v in conn.global_variables()}
    return values["batch_normalization/moving_mean:0"], values["batch_normalization/moving_variance:0"]


def _matching_steps(got: tuple[np.ndarray, np.ndarray], sequence: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    return [k for k, (m, v) in enumerate(sequence)
            if np.allclose(got[0], m, rtol=1e-5, atol=1e-7) and np.allclose(got[1], v, rtol=1e-5, atol=1e-7)]


def test_kill_during_update_runs_leaves_a_whole_number_of_runs(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state").start()
    graph = f"bn-{uuid.uuid4().hex[:8]}"
    acked: list[int] = [0]
    failures: list[BaseException] = []
    try:
        layerserve.connect(server.url, graph=graph)
        img, updates = _build()
        sess = tf.Session()

        def loop() -> None:
            try:
                while True:
                    sess.run(updates, {img: DATA})
                    acked[0] += 1
            except (layerserve.exceptions.TransportError, OSError, ConnectionError):
                return
            except BaseException as exc:
                failures.append(exc)

        worker = threading.Thread(target=loop)
        worker.start()
        deadline = time.monotonic() + 30
        while acked[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        worker.join(30)
        assert not worker.is_alive() and not failures, failures
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "state", port=server.port).start()
    try:
        with layerserve.Connection(restarted.url, graph=graph) as conn:
            got = _stored_moving(conn)
        steps = _matching_steps(got, _moving_sequence(acked[0] + 1))
        assert steps and steps[0] in (acked[0], acked[0] + 1), (acked[0], steps, got)
    finally:
        restarted.stop()


def test_two_clients_running_one_program_apply_each_update_once(server: ServerProcess) -> None:
    graph = f"bn2-{uuid.uuid4().hex[:8]}"
    layerserve.connect(server.url, graph=graph)
    img, updates = _build()
    counter = tf.get_variable("runs", initializer=tf.constant(0, tf.int64), trainable=False)
    step = tf.group(*updates, counter.assign_add(1))
    with tf.Session() as sess:
        sess.run(step, {img: DATA})
    binding = tf.get_default_graph().binding
    (program,) = binding.programs.values()
    runs_each, failures = 12, []

    def client() -> None:
        try:
            with layerserve.Connection(server.url, graph=graph) as conn:
                for _ in range(runs_each):
                    conn.call("POST", f"/v1/graphs/{graph}/programs/{program}:run", {"feeds": ["img:0"],
                              "fetches": []}, tensors=[DATA], accept_tensors=True, request_key="values")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    total = 1 + 2 * runs_each
    with layerserve.Connection(server.url, graph=graph) as conn:
        values = {v.name: v.numpy() for v in conn.global_variables()}
        got = _stored_moving(conn)
    assert values["runs:0"] == total
    assert _matching_steps(got, _moving_sequence(total))[:1] == [total]


def _program_after_restart(first: ServerProcess, second_factory: Any) -> None:
    """A program registered through ``first`` runs, by its id, on the server ``second_factory`` starts."""
    graph = f"p-{uuid.uuid4().hex[:8]}"
    layerserve.connect(first.url, graph=graph)
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    counter = tf.get_variable("count", initializer=tf.constant(0.0))
    with tf.control_dependencies([counter.assign_add(1.0)]):
        y = tf.identity(tf.layers.dense(x, 2, kernel_initializer=tf.ones_initializer(), name="fc"), name="y")
    with tf.Session() as sess:
        sess.run(y, {x: np.ones((1, 3), np.float32)})
    (program,) = tf.get_default_graph().binding.programs.values()
    second = second_factory()
    try:
        with layerserve.Connection(second.url, graph=graph) as conn:
            result = conn.call("POST", f"/v1/graphs/{graph}/programs/{program}:run",
                               {"feeds": ["x:0"], "fetches": ["y:0"]}, tensors=[np.ones((2, 3), np.float32)],
                               accept_tensors=True, request_key="values")
            np.testing.assert_array_equal(result.tensors[0], np.full((2, 2), 3.0, np.float32))
            assert {v.name: v.numpy() for v in conn.global_variables()}["count:0"] == 2.0
    finally:
        second.stop()


def test_programs_survive_a_restart(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "state").start()
    try:
        _program_after_restart(first, lambda: (first.stop(), ServerProcess(tmp_path / "state").start())[1])
    finally:
        first.stop()


def test_a_program_registered_on_one_replica_runs_on_another(tmp_path: Path,
                                                             redis_process: RedisProcess) -> None:  # noqa: F811
    first = ServerProcess(tmp_path / "a", "--store", redis_process.url).start()
    try:
        _program_after_restart(first, lambda: ServerProcess(tmp_path / "b", "--store", redis_process.url).start())
    finally:
        first.stop()
