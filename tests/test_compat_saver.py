"""TF1's ``tf.train.Saver`` in ``layerserve.compat.v1``: checkpoints TensorFlow's Saver wrote are
restored into the same TF1 program and give TensorFlow's outputs; what ours writes, TensorFlow's
Saver restores."""

from __future__ import annotations

import itertools
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerserve
import layerserve.compat.v1 as tf
from layerserve import checkpoint
from tests.server import ServerProcess
from tests.test_checkpoint_format import _tensorflow_python

DATA = Path(__file__).parent / "data" / "checkpoints"
_graphs = itertools.count(1)


def _program(v1: Any) -> tuple[Any, Any]:
    """The layers of tests/checkpoints/generate.py's program (written against TF1's API)."""
    x = v1.placeholder(v1.float32, [None, 3], name="x")
    h = v1.layers.dense(x, 4, activation=v1.nn.relu, name="fc")
    return x, v1.layers.dense(h, 2, name="out")


@pytest.fixture
def graph(server: ServerProcess) -> Any:
    conn = layerserve.connect(server.url, graph=f"saver{next(_graphs)}")
    tf.reset_default_graph()
    yield conn
    conn.close()


def test_restores_what_tensorflow_saved(graph: Any) -> None:
    recorded = np.load(DATA / "mlp_adam.npz")
    x, y = _program(tf)
    saver = tf.train.Saver()  # the program's variables; the checkpoint's Adam slots stay unread
    with tf.Session() as sess:
        saver.restore(sess, str(DATA / "mlp_adam-3"))  # no initializer run first, as in TF
        np.testing.assert_allclose(sess.run(y, {x: recorded["x"]}), recorded["y"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(sess.run(tf.global_variables()[0]), recorded["var:fc/kernel"])


def test_restore_errors(graph: Any, tmp_path: Path) -> None:
    _program(tf)
    with tf.variable_scope("more"):
        tf.get_variable("w", shape=[2], initializer=tf.zeros_initializer())
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(tf.global_variables())
        with pytest.raises(tf.errors.NotFoundError, match="Key more/w not found in checkpoint"):
            tf.train.Saver().restore(sess, str(DATA / "mlp_adam-3"))
        tensors = checkpoint.read_checkpoint(DATA / "mlp_adam-3")
        tensors["fc/kernel"] = np.zeros((3, 5), np.float32)
        tensors["more/w"] = np.ones(2, np.float32)
        checkpoint.write_checkpoint(tmp_path / "wide", tensors)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"fc/kernel:0 .*\[3, 4\].*\[3, 5\]"):
            tf.train.Saver().restore(sess, str(tmp_path / "wide"))
        with pytest.raises(ValueError, match=f"The passed save_path is not a valid checkpoint: {tmp_path}/nope-7"):
            tf.train.Saver().restore(sess, str(tmp_path / "nope-7"))
        after = sess.run(tf.global_variables())
        assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_save_max_to_keep_and_latest(graph: Any, tmp_path: Path) -> None:
    _program(tf)
    step = tf.get_variable("global_step", shape=[], dtype=tf.int64, initializer=tf.zeros_initializer(), trainable=False)
    bump = tf.assign_add(step, np.int64(1))
    saver = tf.train.Saver(max_to_keep=2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        prefixes = []
        for _ in range(3):
            sess.run(bump)
            prefixes.append(saver.save(sess, str(tmp_path / "model"), global_step=step))
    assert prefixes == [str(tmp_path / f"model-{k}") for k in (1, 2, 3)]
    assert saver.last_checkpoints == prefixes[1:]
    assert tf.train.latest_checkpoint(str(tmp_path)) == prefixes[-1]
    assert sorted(p.name for p in tmp_path.glob("*.index")) == ["model-2.index", "model-3.index"]
    saved = tf.train.load_checkpoint(prefixes[-1])
    assert saved.get_tensor("global_step").dtype == np.int64 and int(saved.get_tensor("global_step")) == 3
    assert dict(tf.train.list_variables(str(tmp_path)))["fc/kernel"] == [3, 4]


def test_tensorflow_restores_what_we_saved(graph: Any, tmp_path: Path) -> None:
    python = _tensorflow_python()
    if python is None:
        pytest.skip("TensorFlow is not importable here; set LAYERSERVE_TF_PYTHON to a Python that has it")
    rng = np.random.default_rng(11)
    xs = rng.normal(size=(5, 3)).astype(np.float32)
    x, y = _program(tf)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([tf.assign(v, rng.normal(size=v.shape.as_list()).astype(np.float32)) for v in tf.global_variables()])
        ours = sess.run(y, {x: xs})
        prefix = tf.train.Saver().save(sess, str(tmp_path / "ours"), global_step=12)
    np.save(tmp_path / "x.npy", xs)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        V1 = tf.compat.v1
        V1.disable_eager_execution()
        x = V1.placeholder(tf.float32, [None, 3], name="x")
        y = V1.layers.dense(V1.layers.dense(x, 4, activation=tf.nn.relu, name="fc"), 2, name="out")
        with V1.Session() as sess:
            V1.train.Saver().restore(sess, V1.train.latest_checkpoint({str(tmp_path)!r}))
            np.save({str(tmp_path / 'y.npy')!r}, sess.run(y, {{x: np.load({str(tmp_path / 'x.npy')!r})}}))
    """)
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert prefix == str(tmp_path / "ours-12")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ours, rtol=1e-5, atol=1e-6)



def test_training_carries_on_both_ways(graph: Any, tmp_path: Path) -> None:
    """Trained 3 steps by TensorFlow and saved with its Saver; restored here, 3 more steps give
    TensorFlow's losses (tests/checkpoints/generate.py recorded them). Then saved here, and
    TensorFlow's Saver restores it and its next 3 steps give our next 3 losses."""
    from tests.checkpoints.programs import sgd_mlp

    recorded = np.load(DATA / "sgd_mlp.npz")
    net = sgd_mlp(tf)
    feed = {net["x"]: recorded["x"], net["labels"]: recorded["labels"]}
    with tf.Session() as sess:
        saver = tf.train.Saver()
        saver.restore(sess, str(DATA / "sgd_mlp-3"))
        assert int(sess.run(net["step"])) == 3
        losses = [sess.run([net["loss"], net["train"]], feed)[0] for _ in range(3)]
        prefix = saver.save(sess, str(tmp_path / "ours"), global_step=net["step"])
        ours_next = [sess.run([net["loss"], net["train"]], feed)[0] for _ in range(3)]
    np.testing.assert_allclose(losses, recorded["losses"], rtol=1e-5)
    assert prefix == str(tmp_path / "ours-6")
    python = _tensorflow_python()
    if python is None:
        pytest.skip("TensorFlow is not importable here (for the reverse direction); set LAYERSERVE_TF_PYTHON")
    np.savez(tmp_path / "feed.npz", x=recorded["x"], labels=recorded["labels"])
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        sys.path.insert(0, {str(Path(__file__).parent / "checkpoints")!r})
        from programs import sgd_mlp
        V1 = tf.compat.v1
        V1.disable_eager_execution()
        net = sgd_mlp(V1)
        data = np.load({str(tmp_path / "feed.npz")!r})
        feed = {{net["x"]: data["x"], net["labels"]: data["labels"]}}
        with V1.Session() as sess:
            V1.train.Saver().restore(sess, V1.train.latest_checkpoint({str(tmp_path)!r}))
            assert int(sess.run(net["step"])) == 6
            np.save({str(tmp_path / "tf_losses.npy")!r}, [sess.run([net["loss"], net["train"]], feed)[0] for _ in range(3)])
    """)
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "tf_losses.npy"), ours_next, rtol=1e-5)


def test_program_runs_pinned_to_a_checkpoint(graph: Any) -> None:
    """A TF1 run's program computed with a server checkpoint's values beside the live ones;
    a program that writes is refused when pinned, and nothing changes."""
    x, y = _program(tf)
    xs = np.ones((2, 3), np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        old = sess.run(y, {x: xs})
        graph.create_checkpoint("before")
        kernel = tf.global_variables()[0]
        sess.run(tf.assign(kernel, np.full((3, 4), 0.5, np.float32)))
        new = sess.run(y, {x: xs})
        assert not np.allclose(old, new)
        (program,) = [p for p in sess._programs.values() if p.fetches == [y.name]]
        binding = tf.get_default_graph().binding
        program_id = binding.programs[program.digest]
        path = f"/v1/graphs/{binding.conn.graph}/programs/{program_id}:run"
        header = {"feeds": [x.name], "fetches": [y.name], "checkpoint": "before"}
        pinned = binding.conn.call("POST", path, header, tensors=[xs], request_key="values", accept_tensors=True)
        np.testing.assert_allclose(pinned.tensors[0], old, rtol=1e-6)
        np.testing.assert_allclose(sess.run(y, {x: xs}), new, rtol=1e-6)
        writer = tf.assign(kernel, np.zeros((3, 4), np.float32))
        sess.run(writer)
        (writes,) = [p for p in sess._programs.values() if p.fetches == [writer.name]]
        with pytest.raises(layerserve.exceptions.LayerServeError) as refused:
            binding.conn.call("POST", f"/v1/graphs/{binding.conn.graph}/programs/{binding.programs[writes.digest]}:run",
                              {"feeds": [], "fetches": [writer.name], "checkpoint": "before"}, tensors=[],
                              request_key="values", accept_tensors=True)
        assert refused.value.code == "pinned_run_writes"
        np.testing.assert_array_equal(sess.run(kernel), np.zeros((3, 4), np.float32))
