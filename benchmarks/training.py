"""``python -m benchmarks.training``: a TF1 training step through ``layerserve.compat.v1`` against
TensorFlow's ``sess.run(train_op)`` in process, interleaved, and the server's memory over many steps.

Starts its own layerserve servers, builds each model with the same weights in
``layerserve.compat.v1`` and (when installed: ``pip install '.[bench-tf]'``) ``tf.compat.v1``,
and prints the median milliseconds per step:

- ``layerserve_step``: ``sess.run(train_op, feed)``: forward, backward, the optimizer's update, the
  BatchNormalization updates and the global step in one request and one commit, fsynced before
  the answer (the default ``--fsync always``);
- ``everysec_step``: the same against a server started with ``--fsync everysec`` (the commit is
  with the operating system before the answer, on disk within a second);
- ``behind_step``: the same against a server started with ``--fsync everysec --write-behind-s 1``
  (the step is answered before it is written; each second the latest values are written as one
  record: a crash may lose the last second of steps, never part of one);
- ``tf_step``: the same with TensorFlow in this process.

Each server runs alone, interleaved with TensorFlow in its own pass (``tf_step`` is the median of
the passes' TensorFlow figures; each ratio is of its own pass). ``--memory-steps N`` then runs N
steps of the first model on a write-behind server and prints its resident set size after N/10 and
after N steps.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import layerserve
import layerserve.compat.v1 as ltf
from benchmarks.run import interleaved
from benchmarks.servers import layerserve_server

__all__ = ["main"]

Builder = Callable[[Any, dict[str, np.ndarray]], tuple[Any, Any, Any]]  # (train op, feed, loss)


def _mlp_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"x": rng.standard_normal((64, 784)).astype(np.float32), "y": rng.integers(0, 10, 64).astype(np.int32)}


def build_mlp(tf: Any, data: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    """MLP 64x784 -> 512 -> 512 -> 256 -> 10 (relu), sparse softmax cross-entropy, Adam."""
    x = tf.placeholder(tf.float32, [None, 784])
    y = tf.placeholder(tf.int32, [None])
    h = x
    for k, units in enumerate((512, 512, 256, 10)):
        h = tf.layers.dense(h, units, activation=tf.nn.relu if k < 3 else None)
    loss = tf.losses.sparse_softmax_cross_entropy(y, h)
    step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
    return train_op, {x: data["x"], y: data["y"]}, loss


def _convnet_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {"x": rng.standard_normal((8, 32, 32, 3)).astype(np.float32), "y": rng.integers(0, 10, 8).astype(np.int32)}


def build_convnet(tf: Any, data: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    """conv-BN-pool-conv-flatten-dense on 8x32x32x3, Adam, BN's UPDATE_OPS in the step."""
    x = tf.placeholder(tf.float32, [None, 32, 32, 3])
    y = tf.placeholder(tf.int32, [None])
    h = tf.layers.conv2d(x, 16, 3, padding="same", use_bias=False)
    h = tf.nn.relu(tf.layers.batch_normalization(h, training=True))
    h = tf.layers.max_pooling2d(h, 2, 2)
    h = tf.layers.conv2d(h, 32, 3, strides=2, padding="same", activation=tf.nn.relu)
    logits = tf.layers.dense(tf.layers.flatten(h), 10)
    loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
    step = tf.train.get_or_create_global_step()
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = tf.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
    return train_op, {x: data["x"], y: data["y"]}, loss


CASES: list[tuple[str, Builder, Callable[[], dict[str, np.ndarray]], int]] = [
    ("Adam step, MLP 64x784 -> 512 -> 512 -> 256 -> 10", build_mlp, _mlp_data, 100),
    ("Adam step, convnet 8x32x32x3 (conv-BN-pool-conv-dense)", build_convnet, _convnet_data, 100),
]


def layerserve_step(url: str, build: Builder, data: dict[str, np.ndarray],
                    start: dict[str, np.ndarray] | None = None) -> tuple[Callable[[], Any], Any]:
    """A step of ``build``'s model; ``start``: initial values by variable name (TF's, to compare)."""
    layerserve.connect(url, graph=f"bench-train-{uuid.uuid4().hex[:8]}")
    ltf.reset_default_graph()
    train_op, feed, loss = build(ltf, data)
    sess = ltf.Session()
    sess.run(ltf.global_variables_initializer())
    for v in ltf.global_variables():
        if start and v.name in start:
            v.load(start[v.name], sess)
    return (lambda: sess.run(train_op, feed)), (lambda: sess.run(loss, feed))


def tf_step(build: Builder, data: dict[str, np.ndarray]
            ) -> tuple[Callable[[], Any], Any, dict[str, np.ndarray]] | None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    v1 = tf.compat.v1
    v1.disable_eager_execution()
    graph = v1.Graph()
    with graph.as_default():
        train_op, feed, loss = build(v1, data)
        sess = v1.Session(graph=graph)
        sess.run(v1.global_variables_initializer())
        variables = v1.global_variables()
        start = dict(zip([v.name for v in variables], sess.run(variables), strict=True))
    return (lambda: sess.run(train_op, feed)), (lambda: sess.run(loss, feed)), start


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Each column's server: the default (fsync before the answer), everysec, and write-behind.
MODES: dict[str, tuple[str, ...]] = {
    "layerserve_step": (),
    "everysec_step": ("--fsync", "everysec"),
    "behind_step": ("--fsync", "everysec", "--write-behind-s", "1"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="steps per column (default per case)")
    parser.add_argument("--memory-steps", type=int, default=0, help="then this many steps of the MLP, RSS at 1/10 and end")
    args = parser.parse_args(argv)
    print(f"{'median ms per step':58s}{'layerserve_step':>16s}{'everysec_step':>14s}{'behind_step':>12s}"
          f"{'tf_step':>10s}{'ratio':>8s}{'everysec':>10s}{'behind':>8s}")
    for name, build, make, rounds in CASES:
        _row(name, build, make(), args.rounds or rounds)
    if args.memory_steps:
        _memory(args.memory_steps)
    return 0


def _row(name: str, build: Builder, data: dict[str, np.ndarray], rounds: int) -> None:
    """One row: each mode's server in turn, alone (another mode's fsyncs would slow it too), its
    steps interleaved with TensorFlow's from the same start; a ratio is of one such run."""
    ms, ratios, tf_ms = {}, {}, []
    for column, flags in MODES.items():
        server = layerserve_server(*flags)
        try:
            ours, tf = _interleaved_with_tf(build, data, rounds, server.url)
        finally:
            server.stop()
        ms[column], ratios[column] = ours, ours / tf
        tf_ms.append(tf)
    print(f"{name:58s}{ms['layerserve_step']:16.2f}{ms['everysec_step']:14.2f}{ms['behind_step']:12.2f}"
          f"{float(np.median(tf_ms)):10.2f}{ratios['layerserve_step']:8.2f}{ratios['everysec_step']:10.2f}"
          f"{ratios['behind_step']:8.2f}")


def _interleaved_with_tf(build: Builder, data: dict[str, np.ndarray], rounds: int, url: str) -> tuple[float, float]:
    """Median ms of the server's step and of TensorFlow's (nan without TensorFlow)."""
    tf_run = tf_step(build, data)
    columns = {"layerserve": layerserve_step(url, build, data, tf_run[2] if tf_run else None)}
    if tf_run is not None:  # same start: the losses agree
        np.testing.assert_allclose(columns["layerserve"][1](), tf_run[1](), rtol=1e-4, atol=1e-5)
        columns["tf"] = (tf_run[0], tf_run[1])
    ms = interleaved({k: step for k, (step, _) in columns.items()}, rounds)
    if tf_run is not None:  # as many steps on both sides: the losses still agree
        np.testing.assert_allclose(columns["layerserve"][1](), tf_run[1](), rtol=2e-3, atol=1e-4)
    return ms["layerserve"], ms.get("tf", float("nan"))


def _memory(steps: int) -> None:
    """The write-behind server's RSS after ``steps // 10`` and ``steps`` MLP steps (memory does
    not depend on how commits are written: the fastest)."""
    server = layerserve_server(*MODES["behind_step"])
    try:
        step, _ = layerserve_step(server.url, build_mlp, _mlp_data())
        marks = {}
        for k in range(1, steps + 1):
            step()
            if k in (steps // 10, steps):
                marks[k] = _rss_mib(server.proc.pid)
    finally:
        server.stop()
    first, last = marks[steps // 10], marks[steps]
    print(f"server RSS after {steps // 10} steps: {first:.1f} MiB; after {steps}: {last:.1f} MiB "
          f"({(last / first - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    raise SystemExit(main())
