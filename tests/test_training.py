"""Training over the network: TF1's optimizers (layerserve.compat.v1.train) against the spec's
formulas (tf1-graph-mode.md §6, §7), and the TF1 training programs through a real server.

These run once ``layerserve.compat.v1`` (graph mode) is present; ``scripts/tf_with_layerserve_training.py``
checks the same optimizer code against TensorFlow's recorded programs on TensorFlow's own ops.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server import ServerProcess

tf: Any = pytest.importorskip("layerserve.compat.v1", reason="TF1 graph mode (layerserve.compat.v1) is not here yet")
if not hasattr(tf, "Session"):
    pytest.skip("TF1 graph mode (layerserve.compat.v1) is not here yet", allow_module_level=True)

ROOT = Path(__file__).resolve().parent
RUNNER = ROOT / "tf1" / "run_programs.py"
W0 = np.array([0.5, -1.5, 2.0], np.float32)
C = np.array([1.0, -2.0, 0.5], np.float32)
STEPS = 4


def _grad(w: np.ndarray) -> np.ndarray:
    """Gradient of the test loss ``sum(c * w) + 0.5 * sum(w^2 * c^2)``."""
    return C + w * C * C


def _train(server: ServerProcess, make_optimizer: Callable[[], Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Run STEPS minimize steps on the test loss; the variable after each step and the final state."""
    import layerserve

    layerserve.connect(server.url, graph=f"train-{make_optimizer.__name__}-{id(make_optimizer)}")
    tf.reset_default_graph()
    w = tf.get_variable("w", initializer=tf.constant_initializer(W0), shape=[3])
    c = tf.constant(C)
    loss = tf.reduce_sum(c * w) + 0.5 * tf.reduce_sum(tf.square(w * c))
    gs = tf.train.get_or_create_global_step()
    opt = make_optimizer()
    train_op = opt.minimize(loss, global_step=gs)
    values = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(STEPS):
            assert sess.run(train_op) is None
            values.append(sess.run(w))
        state = {v.name: sess.run(v) for v in tf.global_variables()}
        state["slot_names"] = opt.get_slot_names()
        state["order"] = [v.name for v in tf.global_variables()]
    return values, state


def _momentum() -> Any:
    return tf.train.MomentumOptimizer(0.1, 0.9)


def _nesterov() -> Any:
    return tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True)


def _adam() -> Any:
    return tf.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.9, epsilon=1e-3)


def _adagrad() -> Any:
    return tf.train.AdagradOptimizer(0.2)


def _rmsprop() -> Any:
    return tf.train.RMSPropOptimizer(0.05, decay=0.8, momentum=0.3)


def _rmsprop_centered() -> Any:
    return tf.train.RMSPropOptimizer(0.05, decay=0.8, momentum=0.3, epsilon=1e-6, centered=True)


def _reference(kind: str) -> tuple[list[np.ndarray], list[str]]:
    """The spec's update rules in numpy (float64), and the slots' names in global_variables order."""
    w = W0.astype(np.float64)
    a = np.zeros(3)
    m, v, mg = np.zeros(3), np.zeros(3), np.zeros(3)
    acc, ms, mom = np.full(3, 0.1), np.ones(3), np.zeros(3)
    out = []
    for t in range(1, STEPS + 1):
        g = _grad(w)
        if kind in ("momentum", "nesterov"):
            a = 0.9 * a + g
            w = w - 0.1 * (g + 0.9 * a) if kind == "nesterov" else w - 0.1 * a
        elif kind == "adam":
            m = 0.8 * m + 0.2 * g
            v = 0.9 * v + 0.1 * g * g
            lr_t = 0.1 * np.sqrt(1 - 0.9**t) / (1 - 0.8**t)
            w = w - lr_t * m / (np.sqrt(v) + 1e-3)
        elif kind == "adagrad":
            acc = acc + g * g
            w = w - 0.2 * g / np.sqrt(acc)
        else:
            eps = 1e-6 if kind == "rmsprop_centered" else 1e-10
            ms = 0.8 * ms + 0.2 * g * g
            denom = ms + eps
            if kind == "rmsprop_centered":
                mg = 0.8 * mg + 0.2 * g
                denom = ms - mg * mg + eps
            mom = 0.3 * mom + 0.05 * g / np.sqrt(denom)
            w = w - mom
        out.append(w.copy())
    slots = {"momentum": ["w/Momentum:0"], "nesterov": ["w/Momentum:0"],
             "adam": ["beta1_power:0", "beta2_power:0", "w/Adam:0", "w/Adam_1:0"], "adagrad": ["w/Adagrad:0"],
             "rmsprop": ["w/RMSProp:0", "w/RMSProp_1:0"],
             "rmsprop_centered": ["w/RMSProp:0", "w/RMSProp_1:0", "w/RMSProp_2:0"]}[kind]
    return out, slots


OPTIMIZERS = {"momentum": (_momentum, ["momentum"]), "nesterov": (_nesterov, ["momentum"]),
              "adam": (_adam, ["m", "v"]), "adagrad": (_adagrad, ["accumulator"]),
              "rmsprop": (_rmsprop, ["momentum", "rms"]),
              "rmsprop_centered": (_rmsprop_centered, ["mg", "momentum", "rms"])}


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_optimizer_follows_the_spec_formulas(server: ServerProcess, kind: str) -> None:
    make, slot_names = OPTIMIZERS[kind]
    values, state = _train(server, make)
    expected, slots = _reference(kind)
    for step, (got, want) in enumerate(zip(values, expected, strict=True)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=f"{kind} after step {step + 1}")
    assert state["order"] == ["w:0", "global_step:0", *slots]
    assert state["slot_names"] == slot_names
    assert state["global_step:0"] == STEPS and state["global_step:0"].dtype == np.int64
    if kind == "adam":  # after t steps the powers hold b^(t+1)
        np.testing.assert_allclose(state["beta1_power:0"], 0.8 ** (STEPS + 1), rtol=1e-6)
        np.testing.assert_allclose(state["beta2_power:0"], 0.9 ** (STEPS + 1), rtol=1e-6)


def test_minimize_without_any_gradient_is_tf_value_error(server: ServerProcess) -> None:
    import layerserve

    layerserve.connect(server.url, graph="train-nograd")
    tf.reset_default_graph()
    w = tf.get_variable("w", [2])
    loss = tf.reduce_sum(tf.stop_gradient(w))
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)


def _run_programs(server: ServerProcess, folder: Path) -> None:
    if not RUNNER.exists():
        pytest.skip("the TF1 program runner (tests/tf1/run_programs.py) is not here yet")
    done = subprocess.run([sys.executable, str(RUNNER), "--backend", "client", "--url", server.url, "--dir",
                           str(folder), "--kind", "training"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def test_public_training_programs_pass(server: ServerProcess) -> None:
    _run_programs(server, ROOT / "tf1")


def test_more_training_programs_pass(server: ServerProcess) -> None:
    """Every optimizer and schedule, recorded from TensorFlow (tests/tf1_training)."""
    _run_programs(server, ROOT / "tf1_training")


def test_gradient_through_an_op_without_a_rule_is_refused_at_registration(server: ServerProcess) -> None:
    """TF's LookupError ("No gradient defined for operation ..."), a 422 naming the op, before any run."""
    import layerserve
    from layerserve.compat.v1.graph import get_default_graph

    layerserve.connect(server.url, graph="train-norule")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.get_variable("w", [3], initializer=tf.ones_initializer())
    g = get_default_graph()
    h = x * w
    op = g.new_operation("Celu", "celu", [h])  # an ONNX op without a gradient rule
    values = g.add_output(op, tf.float32, tf.TensorShape([None, 3]))
    g.record(op, "Celu", [h], [values.name], alpha=1.0)
    loss = tf.reduce_sum(values)
    grad = tf.gradients(loss, [w])[0]
    with tf.Session() as sess, pytest.raises(Exception) as caught:
        sess.run(grad, {x: np.ones((2, 3), np.float32)})
    assert isinstance(caught.value, LookupError), type(caught.value)
    assert "Celu" in str(caught.value) and "No gradient defined" in str(caught.value)


def test_dropout_gradient_uses_the_mask_of_the_same_run(server: ServerProcess) -> None:
    """In training mode the gradient through Dropout is the forward run's mask over (1 - rate)."""
    import layerserve

    layerserve.connect(server.url, graph="train-dropout")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 50], name="x")
    y = tf.layers.dropout(x, rate=0.4, training=True)
    weights = np.linspace(-1.0, 1.0, 50, dtype=np.float32)
    grad = tf.gradients(tf.reduce_sum(y * tf.constant(weights)), x)[0]
    data = np.random.default_rng(1).uniform(0.5, 1.5, (8, 50)).astype(np.float32)
    with tf.Session() as sess:
        for _ in range(3):  # each run draws a new mask; value and gradient agree within a run
            out, g = sess.run([y, grad], {x: data})
            kept = out != 0
            assert 0 < kept.mean() < 1
            np.testing.assert_allclose(out[kept], data[kept] / 0.6, rtol=1e-6)
            np.testing.assert_allclose(g, np.where(kept, weights / 0.6, 0.0), rtol=1e-6, atol=1e-7)


def test_gradients_are_none_exactly_where_tf_gives_none(server: ServerProcess) -> None:
    """TF registers no gradient for floor, ceil, round and floordiv (None); sign and floormod have one."""
    import layerserve

    layerserve.connect(server.url, graph="train-none")
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [3], name="x")
    cases = {"floor": tf.floor(x), "ceil": tf.ceil(x), "round": tf.round(x), "floordiv": x // 2.0,
             "stop": tf.stop_gradient(x), "cast_int": tf.cast(tf.cast(x, tf.int32), tf.float32),
             "argmax": tf.cast(tf.argmax(x), tf.float32), "sign": tf.sign(x), "floormod": tf.floormod(x, 2.0),
             "where": tf.where(x > 0, x, x * 2)}
    grads = {k: tf.gradients(tf.reduce_sum(y), x)[0] for k, y in cases.items()}
    assert [k for k, g in grads.items() if g is None] == ["floor", "ceil", "round", "floordiv", "stop", "cast_int",
                                                           "argmax"]
    with tf.Session() as sess:
        values = sess.run({k: g for k, g in grads.items() if g is not None}, {x: np.array([-1.5, 0.5, 2.5], np.float32)})
    np.testing.assert_array_equal(values["sign"], np.zeros(3, np.float32))
    np.testing.assert_array_equal(values["floormod"], np.ones(3, np.float32))
    np.testing.assert_array_equal(values["where"], np.array([2.0, 1.0, 1.0], np.float32))
