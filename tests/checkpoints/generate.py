"""Records checkpoints written by real TensorFlow's ``tf.compat.v1.train.Saver`` as test data.

Not part of the test suite: it needs TensorFlow 2.21 with tf-keras, e.g.

    TF_USE_LEGACY_KERAS=1 /path/to/tf-venv/bin/python tests/checkpoints/generate.py tests/data/checkpoints

Writes, per program, TensorFlow's ``<name>-<step>.index`` / ``.data-00000-of-00001`` (no MetaGraph)
and ``<name>.npz``: every saved tensor as ``tf.train.load_checkpoint`` reads it (keys ``var:<name>``),
plus the program's input ``x`` and TensorFlow's output ``y`` for it after training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from programs import sgd_mlp  # beside this script, shared with the tests

V1 = tf.compat.v1
V1.disable_eager_execution()
RNG = np.random.default_rng(20261203)


def _mlp_adam(out: Path) -> None:
    """Two dense layers trained three Adam steps, plus variables of every dtype a layer uses."""
    V1.reset_default_graph()
    x = V1.placeholder(tf.float32, [None, 3], name="x")
    labels = V1.placeholder(tf.float32, [None, 2], name="labels")
    kernel0 = RNG.normal(size=(3, 4)).astype(np.float32)
    h = V1.layers.dense(x, 4, activation=tf.nn.relu, name="fc", kernel_initializer=V1.constant_initializer(kernel0))
    y = V1.layers.dense(h, 2, name="out", kernel_initializer=V1.constant_initializer(
        RNG.normal(size=(4, 2)).astype(np.float32)))
    with V1.variable_scope("extra"):
        V1.get_variable("half", initializer=RNG.normal(size=(2, 3)).astype(np.float16))
        V1.get_variable("double", initializer=RNG.normal(size=(5,)).astype(np.float64))
        V1.get_variable("count", initializer=np.int32(41), trainable=False)
        V1.get_variable("empty", shape=(0, 3), dtype=tf.float32)
    step = V1.train.get_or_create_global_step()
    loss = V1.losses.mean_squared_error(labels, y)
    train = V1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
    saver = V1.train.Saver()
    xs = RNG.normal(size=(5, 3)).astype(np.float32)
    ts = RNG.normal(size=(5, 2)).astype(np.float32)
    with V1.Session() as sess:
        sess.run(V1.global_variables_initializer())
        for _ in range(3):
            sess.run(train, {x: xs, labels: ts})
        prefix = saver.save(sess, str(out / "mlp_adam"), global_step=step, write_meta_graph=False)
        y_after = sess.run(y, {x: xs})
    _record(out / "mlp_adam.npz", prefix, {"x": xs, "y": y_after, "labels": ts})


def _sgd_mlp(out: Path) -> None:
    """``programs.sgd_mlp`` trained 3 steps and saved, then 3 steps more: their losses recorded."""
    V1.reset_default_graph()
    V1.set_random_seed(7)
    net = sgd_mlp(V1)
    xs = RNG.normal(size=(8, 3)).astype(np.float32)
    ts = RNG.normal(size=(8, 2)).astype(np.float32)
    feed = {net["x"]: xs, net["labels"]: ts}
    with V1.Session() as sess:
        sess.run(V1.global_variables_initializer())
        for _ in range(3):
            sess.run(net["train"], feed)
        prefix = V1.train.Saver().save(sess, str(out / "sgd_mlp"), global_step=net["step"], write_meta_graph=False)
        losses = [sess.run([net["loss"], net["train"]], feed)[0] for _ in range(3)]
    _record(out / "sgd_mlp.npz", prefix, {"x": xs, "labels": ts, "losses": np.asarray(losses, np.float32)})


def _record(path: Path, prefix: str, extra: dict[str, np.ndarray]) -> None:
    reader = tf.train.load_checkpoint(prefix)
    values = {f"var:{name}": reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    np.savez(path, **values, **extra)
    print(f"{prefix}: {len(values)} tensors")


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "tests/data/checkpoints").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("mlp_adam*"), *out.glob("sgd_mlp*")]:
        stale.unlink()
    _mlp_adam(out)
    _sgd_mlp(out)
    (out / "checkpoint").unlink(missing_ok=True)  # it names absolute paths of this machine


if __name__ == "__main__":
    main(sys.argv[1:])
