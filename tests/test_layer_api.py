"""The Layer base API beyond the reference cases: sharing, trainable at construction, config, async."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import layerserve


def test_reuse_shares_variables(conn: layerserve.Connection) -> None:
    x = np.ones((2, 3), np.float32)
    conn.layers.dense(x, 4, name="fc")
    conn.layers.dense(x, 4, name="fc", reuse=True)
    first, second = conn.list_layers()
    second.set_weights([np.full((3, 4), 2.0, np.float32), np.zeros(4, np.float32)])
    np.testing.assert_array_equal(first.get_weights()[0], np.full((3, 4), 2.0, np.float32))
    np.testing.assert_array_equal(first(x), np.full((2, 4), 6.0, np.float32))
    second.delete()  # shared variables stay while another layer holds them
    assert [v.name for v in conn.global_variables()] == ["fc/kernel:0", "fc/bias:0"]
    first.delete()
    assert conn.global_variables() == []


def test_trainable_false_at_construction(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2, trainable=False)
    layer(np.ones((1, 3), np.float32))
    assert layer.trainable_variables == []
    assert [v.trainable for v in layer.non_trainable_variables] == [False, False]
    layer.trainable = True  # TF does not move variables created non-trainable
    assert layer.trainable_variables == []
    assert len(layer.non_trainable_variables) == 2


def test_explicit_build_and_dtype(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(3)
    assert not layer.built and layer.dtype is None and layer.variables == []
    layer.build([None, 5])
    assert layer.built and layer.dtype == "float32" and layer.count_params() == 18
    assert layer.scope_name == "dense"
    y = layer(np.ones((2, 5), np.float64))  # Dense casts a later float64 input to its dtype
    assert y.dtype == np.float32
    wide = conn.layers.Dense(2, dtype="float64")
    assert wide(np.ones((1, 2), np.float32)).dtype == np.float64


def test_dense_on_rank_3_and_output_shape(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(3)
    assert layer.compute_output_shape([None, 5, 4]) == (None, 5, 3)
    layer.build([None, 4])
    kernel = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer.set_weights([kernel, np.ones(3, np.float32)])
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x @ kernel + 1, rtol=1e-5)


def test_config_round_trip(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(3, activation="tanh", kernel_regularizer=layerserve.regularizers.l1_l2(0.1, 0.2),
                              name="cfg")
    config = layer.get_config()
    assert config["kernel_regularizer"]["class_name"] == "L1L2"
    copy = layerserve.layers.Dense.from_config(config)
    assert copy.name == "cfg" and not copy.built
    assert copy.get_config() == config


def test_initializers_are_applied(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(3, kernel_initializer=layerserve.initializers.Constant(0.5),
                              bias_initializer="ones")
    layer.build([None, 2])
    kernel, bias = layer.get_weights()
    np.testing.assert_array_equal(kernel, np.full((2, 3), 0.5, np.float32))
    np.testing.assert_array_equal(bias, np.ones(3, np.float32))
    seeded = [conn.layers.Dense(4, kernel_initializer=layerserve.initializers.GlorotUniform(seed=3)) for _ in range(2)]
    for layer in seeded:
        layer.build([None, 6])
    np.testing.assert_array_equal(seeded[0].get_weights()[0], seeded[1].get_weights()[0])
    limit = np.sqrt(6 / (6 + 4))
    assert np.all(np.abs(seeded[0].get_weights()[0]) <= limit)


def test_losses_order_and_values(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2, activity_regularizer={"l1": 0.5}, kernel_regularizer="l2",
                              bias_regularizer=layerserve.regularizers.L1(0.3))
    x1, x2 = np.ones((2, 3), np.float32), np.full((4, 3), 2.0, np.float32)
    layer.build([None, 3])
    kernel, bias = np.full((3, 2), 0.1, np.float32), np.array([1.0, -1.0], np.float32)
    layer.set_weights([kernel, bias])
    y1, y2 = layer(x1), layer(x2)
    want = [0.5 * np.abs(y1).sum() / 2, 0.5 * np.abs(y2).sum() / 4, 0.01 * (kernel**2).sum(), 0.3 * 2.0]
    np.testing.assert_allclose(layer.losses, want, rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for(x2), want[1:2], rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for([x1, x2]), want[:2], rtol=1e-6)
    np.testing.assert_allclose(layer.get_losses_for(None), want[2:], rtol=1e-6)
    assert layer.get_losses_for(np.zeros((1, 3), np.float32)) == []
    assert all(isinstance(v, np.float32) for v in layer.losses)


def test_apply_async(conn: layerserve.Connection) -> None:
    layer = conn.layers.Dense(2, kernel_initializer="ones")
    x = np.ones((3, 2), np.float32)

    async def main() -> list[np.ndarray]:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph) as aconn:
            return list(await asyncio.gather(*(layer.apply_async(x, connection=aconn) for _ in range(4))))

    for y in asyncio.run(main()):
        np.testing.assert_array_equal(y, np.full((3, 2), 2.0, np.float32))


def test_callable_arguments_are_refused(conn: layerserve.Connection) -> None:
    with pytest.raises(TypeError, match="cannot send a Python callable"):
        conn.layers.Dense(2, kernel_regularizer=lambda w: 0.01 * (w**2).sum())
