"""State survives a restart: layers, name counters, scopes, variables and records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import layerserve
from tests.server import ServerProcess


def test_restart_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    server = ServerProcess(state).start()
    try:
        conn = layerserve.connect(server.url, graph="restart")
        a = conn.layers.Dense(3, activity_regularizer=layerserve.regularizers.l1(0.1),
                              kernel_regularizer=layerserve.regularizers.l2(0.01))
        b = conn.layers.Dense(2, name="head")
        conn.layers.dense(x, 2, name="Dense")  # TF's op names ignore case: Dense/kernel_1:0
        y_a = a(x)
        weights = [np.full((4, 3), 0.5, np.float32), np.arange(3, dtype=np.float32)]
        a.set_weights(weights)
        y_a = a(x)
        b(y_a)
        losses = a.losses
        conn.close()
    finally:
        server.stop()
    server = ServerProcess(state).start()
    try:
        conn = layerserve.connect(server.url, graph="restart")
        layers = {layer.name: layer for layer in conn.list_layers()}
        assert sorted(layers) == ["Dense", "dense_1", "head"]
        again = layers["dense_1"]
        for got, want in zip(again.get_weights(), weights):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(again.losses, losses)  # both applies' records, then the weight loss
        np.testing.assert_array_equal(again(x), y_a)
        assert again.scope_name == "dense" and layers["head"].scope_name == "head"
        assert conn.layers.Dense(1).name == "dense_2"  # the name counter survived
        conn.layers.dense(x, 2, name="Dense", reuse=True)  # found by its store key, Dense/kernel
        assert [v.name for v in conn.global_variables()] == [
            "Dense/kernel:0", "Dense/bias:0", "dense/kernel_1:0", "dense/bias_1:0", "head/kernel:0", "head/bias:0"]
        conn.close()
    finally:
        server.stop()
