"""A TF1 program run past the request timeout is terminated like an apply: the answer is 503
``processing_timeout`` in time, the server's CPU comes back, its worker thread returns to the
pool, and the run commits none of its writes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import layerserve
import layerserve.compat.v1 as tf
from layerserve.exceptions import ProcessingTimeoutError
from tests.probes import tree_cpu_seconds, watch_health
from tests.server import ServerProcess

TIMEOUT_S = 2.0
GRAPH = "slow-program"


def _slow_program() -> tuple[tf.Tensor, tf.Variable, tf.Tensor]:
    """counter += 1 + sum(a), a = (x^T x) multiplied by itself 200 times: with x of 1 x 1536
    zeros that is 200 products of 1536 x 1536 matrices (tens of seconds of CPU), each one short kernel."""
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [1, None], name="x")
    counter = tf.get_variable("counter", initializer=tf.constant(0.0), trainable=False)
    a = tf.matmul(tf.transpose(x), x)
    for _ in range(200):
        a = tf.matmul(a, a)
    return x, counter, counter.assign_add(1.0 + tf.reduce_sum(a))


def _counter(conn: layerserve.Connection) -> float:
    return float(next(v.numpy() for v in conn.global_variables() if v.name == "counter:0"))


@pytest.fixture
def timed(tmp_path: Path) -> ServerProcess:
    return ServerProcess(tmp_path / "state", "--request-timeout-s", str(TIMEOUT_S)).start()


def test_a_program_run_past_the_timeout_is_terminated_and_commits_nothing(timed: ServerProcess) -> None:
    assert timed.proc is not None
    try:
        conn = layerserve.connect(timed.url, graph=GRAPH)
        x, _, step = _slow_program()
        with tf.Session() as sess:
            sess.run(step, {x: np.zeros((1, 4), np.float32)})  # registers the program; a quick run
        (program,) = tf.get_default_graph().binding.programs.values()
        assert _counter(conn) == 1.0
        big = np.zeros((1, 1536), np.float32)
        with watch_health(timed.url) as health:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(ProcessingTimeoutError):
                    conn.call("POST", f"/v1/graphs/{GRAPH}/programs/{program}:run", {"feeds": ["x:0"], "fetches": []},
                              tensors=[big], accept_tensors=True, request_key="values")
                assert time.monotonic() - started < TIMEOUT_S + 4
        health.assert_live()
        time.sleep(1.0)
        cpu = tree_cpu_seconds(timed.proc.pid)
        time.sleep(3.0)
        busy = tree_cpu_seconds(timed.proc.pid) - cpu
        assert busy < 0.3, f"the server used {busy:.2f} s of CPU in 3 s after the timeouts"  # before: the runs went on
        assert _counter(conn) == 1.0  # before: each abandoned run committed its increment when it ended
        with tf.Session() as sess:  # the pool's threads came back: the program still runs
            sess.run(step, {x: np.zeros((1, 4), np.float32)})
        assert _counter(conn) == 2.0
        conn.close()
        started = time.monotonic()
        assert timed.stop() == 0
        assert time.monotonic() - started < 10
    finally:
        timed.kill()
