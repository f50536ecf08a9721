"""The asyncio client beyond one apply: many applies in flight at once, each answered with its
own result; training applies and their updates; errors as the sync client raises them; JSON
tensors; a fresh connection per call; plain calls; an unreachable server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import layerserve
from layerserve.exceptions import InvalidArgumentError, LayerTypeError, NotFoundError, TransportError
from tests.server import free_port
from tests.threads import Spans

KERNEL = np.arange(12, dtype=np.float32).reshape(4, 3) / 8


def _dense(conn: layerserve.Connection) -> layerserve.layers.Layer:
    layer = conn.layers.Dense(3, use_bias=False)
    layer.build([None, 4])
    layer.set_weights([KERNEL])
    return layer


def test_many_applies_in_flight_each_get_their_own_result(conn: layerserve.Connection) -> None:
    layer = _dense(conn)
    inputs = [np.full((k % 5 + 1, 4), k, np.float32) for k in range(24)]
    spans = Spans()

    async def one(aconn: layerserve.AsyncConnection, k: int) -> np.ndarray:
        with spans.span(who=k):
            return await layer.apply_async(inputs[k], connection=aconn)  # type: ignore[no-any-return]

    async def main() -> list[np.ndarray]:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph) as aconn:
            return list(await asyncio.gather(*(one(aconn, k) for k in range(len(inputs)))))

    for x, y in zip(inputs, asyncio.run(main()), strict=True):
        np.testing.assert_allclose(y, x @ KERNEL, rtol=1e-6)  # exact small products, any order of arrival
    spans.assert_overlapped()


def test_training_applies_record_updates_like_the_sync_client(conn: layerserve.Connection) -> None:
    bn = conn.layers.BatchNormalization(momentum=0.5)
    xs = [np.array([[1.0, 2.0], [3.0, 6.0]], np.float32) * k for k in (1, 2)]

    async def main() -> list[np.ndarray]:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph) as aconn:
            first = await bn.apply_async(xs[0], training=True, connection=aconn)
            return [first, await bn.apply_async(xs[1], training=True, connection=aconn)]

    outputs = asyncio.run(main())
    for x, y in zip(xs, outputs, strict=True):
        np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-5, atol=1e-6)
    assert len(bn.updates) == 4 and [len(bn.get_updates_for(x)) for x in xs] == [2, 2]
    assert sorted(bn.run_updates(xs[0])) == ["batch_normalization/moving_mean:0",
                                            "batch_normalization/moving_variance:0"]


def test_errors_are_the_sync_clients(conn: layerserve.Connection) -> None:
    layer = _dense(conn)

    async def main() -> None:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph) as aconn:
            with pytest.raises(InvalidArgumentError) as wrong_width:
                await layer.apply_async(np.ones((2, 5), np.float32), connection=aconn)
            assert isinstance(wrong_width.value, ValueError) and wrong_width.value.status == 409
            with pytest.raises(LayerTypeError):
                await layer.apply_async(np.ones((2, 4), np.int32), connection=aconn)
            with pytest.raises(NotFoundError):
                await aconn.call("GET", f"/v1/graphs/{conn.graph}/layers/no_such_layer")

    asyncio.run(main())
    with pytest.raises(InvalidArgumentError):
        layer(np.ones((2, 5), np.float32))  # the same error, the same class, synchronously


def test_json_tensors_and_a_fresh_connection_give_the_same_bits(conn: layerserve.Connection) -> None:
    layer = _dense(conn)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)

    async def main() -> list[np.ndarray]:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph, binary=False) as as_json:
            over_json = await layer.apply_async(x, connection=as_json)
        return [over_json, await layer.apply_async(x)]  # no connection given: one of its own

    over_json, fresh = asyncio.run(main())
    want = layer(x)
    assert over_json.dtype == fresh.dtype == want.dtype == np.float32
    assert np.array_equal(over_json.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(fresh.view(np.uint32), want.view(np.uint32))


def test_plain_calls_and_an_unreachable_server(conn: layerserve.Connection) -> None:
    layer = _dense(conn)

    async def main() -> None:
        async with layerserve.AsyncConnection(conn.url, graph=conn.graph) as aconn:
            listed = await aconn.call("GET", f"/v1/graphs/{conn.graph}/layers")
            assert [v["name"] for v in listed.body["layers"]] == [layer.name]
        async with layerserve.AsyncConnection(f"http://127.0.0.1:{free_port()}", graph=conn.graph) as nowhere:
            with pytest.raises(TransportError):
                await layer.apply_async(np.ones((1, 4), np.float32), connection=nowhere)

    asyncio.run(main())
