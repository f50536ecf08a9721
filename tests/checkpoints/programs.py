"""TF1 programs written once against TF1's API, run by TensorFlow (to record checkpoints) and by
``layerserve.compat.v1`` (to restore them and carry on)."""

from __future__ import annotations

from typing import Any

__all__ = ["sgd_mlp"]


def sgd_mlp(v1: Any, learning_rate: float = 0.1) -> dict[str, Any]:
    """Two dense layers trained by plain gradient descent written with ``tf.gradients``."""
    x = v1.placeholder(v1.float32, [None, 3], name="x")
    labels = v1.placeholder(v1.float32, [None, 2], name="labels")
    h = v1.layers.dense(x, 4, activation=v1.nn.relu, name="fc")
    y = v1.layers.dense(h, 2, name="out")
    loss = v1.reduce_mean(v1.square(y - labels))
    step = v1.get_variable("global_step", shape=[], dtype=v1.int64, initializer=v1.zeros_initializer(),
                           trainable=False)
    weights = v1.trainable_variables()
    grads = v1.gradients(loss, weights)
    updates = [v1.assign_sub(w, learning_rate * g) for w, g in zip(weights, grads)]
    train = v1.group(*updates, v1.assign_add(step, v1.constant(1, dtype=v1.int64)))
    return {"x": x, "labels": labels, "y": y, "loss": loss, "train": train, "step": step}
