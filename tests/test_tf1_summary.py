"""``tf.summary`` in ``layerserve.compat.v1``: a TF1 loop's summaries, computed in the same server
run as its fetches, written as TensorBoard event files and read back with TensorBoard's reader."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerserve
import layerserve.compat.v1 as tf
from tests.server import ServerProcess

pytest.importorskip("tensorboard", reason="tf.summary needs the tensorboard package (the dev extra has it)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.fixture
def graph(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[None]:
    tf.reset_default_graph()
    conn = layerserve.connect(server.url, graph=f"summary_{request.node.name[:40]}")
    yield
    conn.close()
    tf.reset_default_graph()


def _read(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _regression() -> tuple[Any, Any, Any, Any, dict[Any, np.ndarray]]:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    t = tf.placeholder(tf.float32, [None, 1], name="t")
    y = tf.layers.dense(x, 1, name="fc")
    mse = tf.reduce_mean(tf.square(y - t), name="mse")
    params = tf.trainable_variables()
    grads = tf.gradients(mse, params)
    train = tf.group(*[tf.assign_sub(v, 0.1 * g) for v, g in zip(params, grads)])
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((32, 3)).astype(np.float32)
    ts = xs @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    return mse, train, params, y, {x: xs, t: ts}


def test_a_loops_scalars_equal_the_losses_it_fetched_step_by_step(graph: None, tmp_path: Path) -> None:
    mse, train, params, _, feed = _regression()
    tf.summary.scalar("loss", mse)
    tf.summary.histogram("kernel", params[0])
    merged = tf.summary.merge_all()
    writer = tf.summary.FileWriter(str(tmp_path), tf.get_default_graph())
    losses, kernels = [], []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(6):
            kernels.append(sess.run(params[0]))
            _, loss, summary = sess.run([train, mse, merged], feed)
            writer.add_summary(summary, global_step=step)
            losses.append(loss)
    writer.close()
    assert all(b < a for a, b in itertools.pairwise(losses))  # it trains

    acc = _read(tmp_path)
    scalars = acc.Scalars("loss")
    assert [e.step for e in scalars] == list(range(6))
    assert [e.value for e in scalars] == [float(np.float32(v)) for v in losses]  # the fetched losses, exactly
    histograms = acc.Histograms("kernel")
    assert [h.step for h in histograms] == list(range(6))
    for h, kernel in zip(histograms, kernels):  # the kernel the run read, before its own update
        v = h.histogram_value
        assert (v.num, v.min, v.max) == (3, float(kernel.min()), float(kernel.max()))
        assert v.sum == pytest.approx(float(kernel.sum()), rel=1e-6) and sum(v.bucket) == 3
        assert all(c in (0, 1, 2, 3) for c in v.bucket)
    nodes = {n.name: n for n in acc.Graph().node}  # the graph tab's nodes: TF's names and op types
    assert (nodes["x"].op, nodes["mse"].op, list(nodes["mse"].input)) == ("Placeholder", "Mean", ["Square"])
    assert list(nodes["fc/BiasAdd"].input) == ["x"]
    assert (nodes["loss"].op, list(nodes["loss"].input)) == ("ScalarSummary", ["mse"])
    assert list(nodes["Merge/MergeSummary"].input) == ["loss", "kernel"]


def test_tags_and_merges_as_tf1_names_them(graph: None, tmp_path: Path) -> None:
    mse, _, _, y, feed = _regression()
    first = tf.summary.scalar("mse", mse)  # the op "mse" exists: TF1 makes the tag "mse_1"
    with tf.name_scope("train"):
        second = tf.summary.scalar("loss", mse)
    mean_y = tf.summary.scalar("mean_y", tf.reduce_mean(y), collections=["extra"])
    assert [t.op.name for t in (first, second, mean_y)] == ["mse_1", "train/loss", "mean_y"]
    assert tf.get_collection(tf.GraphKeys.SUMMARIES) == [first, second]
    both = tf.summary.merge([tf.summary.merge_all(), mean_y])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        loss, summary, alone = sess.run([mse, both, first], feed)
    with tf.summary.FileWriter(str(tmp_path)) as writer:
        writer.add_summary(summary, 1)
        writer.add_summary(alone, 2)
    acc = _read(tmp_path)
    assert sorted(acc.Tags()["scalars"]) == ["mean_y", "mse_1", "train/loss"]
    assert [(e.step, e.value) for e in acc.Scalars("mse_1")] == [(1, float(loss)), (2, float(loss))]
    assert acc.Scalars("train/loss")[0].value == float(loss)


def test_summaries_refuse_what_tf1_refuses(graph: None) -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with pytest.raises(ValueError):
        tf.summary.scalar("not_a_scalar", x)
    with pytest.raises(TypeError):
        tf.summary.merge([x])
    assert tf.summary.merge_all() is None  # nothing collected yet


def test_the_readmes_tensorboard_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    import re
    import subprocess
    import sys
    import uuid

    readme = Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text().split("## TensorBoard logs (`tf.summary`)", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    source = code.group(1).replace("http://127.0.0.1:8000", server.url)
    source = source.replace('graph="tb-demo"', f'graph="tb-demo-{uuid.uuid4().hex[:8]}"')
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    acc = _read(tmp_path / "logs")
    losses = [e.value for e in acc.Scalars("loss")]
    assert len(losses) == 60 and losses[-1] < losses[0]
    assert len(acc.Histograms("hidden_kernel")) == 60
