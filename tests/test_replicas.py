"""Several real layerserve processes on one real Redis: they serve one state, consistently."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import layerserve
from layerserve.exceptions import LayerServeError, TransportError
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.server import ServerProcess
from tests.threads import Worker, join_all

_graphs = itertools.count(1)
X = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def _replica(tmp: Path, redis: RedisProcess) -> ServerProcess:
    return ServerProcess(tmp / "unused-state", "--store", redis.url)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_process: RedisProcess) -> Iterator[list[ServerProcess]]:  # noqa: F811
    procs = [_replica(tmp_path_factory.mktemp("replica"), redis_process).start() for _ in range(2)]
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
def graph() -> str:
    return f"r{next(_graphs)}"


def _conns(replicas: list[ServerProcess], graph: str) -> list[layerserve.Connection]:
    return [layerserve.Connection(r.url, graph=graph) for r in replicas]


def _parallel(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_layer_made_on_one_replica_is_served_by_the_other(replicas: list[ServerProcess], graph: str) -> None:
    a, b = _conns(replicas, graph)
    made = a.layers.Dense(3, kernel_regularizer=layerserve.regularizers.l2(0.1))
    y = made(X)
    seen = {layer.name: layer for layer in b.list_layers()}
    assert list(seen) == ["dense_1"]
    np.testing.assert_array_equal(seen["dense_1"](X), y)
    np.testing.assert_array_equal(seen["dense_1"].losses, made.losses)
    assert b.layers.Dense(1).name == "dense_2" and a.layers.Dense(1).name == "dense_3"
    assert graph in httpx.get(f"{replicas[1].url}/v1/graphs").json()["graphs"]


def test_set_weights_on_one_replica_is_seen_by_the_next_apply_on_the_other(
        replicas: list[ServerProcess], graph: str) -> None:
    a, b = _conns(replicas, graph)
    layer_a = a.layers.Dense(2)
    layer_a(X)
    layer_b = b.list_layers()[0]
    layer_b(X)  # B has it cached now
    for step in range(3):
        kernel, bias = np.full((4, 2), step + 1, np.float32), np.array([step, -step], np.float32)
        layer_a.set_weights([kernel, bias])
        np.testing.assert_array_equal(layer_b(X), X @ kernel + bias)


def test_concurrent_writes_on_both_replicas_lose_nothing(replicas: list[ServerProcess], graph: str) -> None:
    a, b = _conns(replicas, graph)
    per_replica = 6
    x_for = lambda i: np.full((1, 4), i, np.float32)  # distinct inputs, so distinct records
    layer = a.layers.Dense(1, activity_regularizer=layerserve.regularizers.l1(1.0))
    layer(x_for(0))
    on_b = b.list_layers()[0]

    def work(conn: layerserve.Connection, handle: layerserve.layers.Layer, first: int) -> Callable[[], None]:
        def job() -> None:
            for i in range(first, first + per_replica):
                conn.layers.Dense(1)
                handle(x_for(i))
        return job

    _parallel(work(a, layer, 1), work(b, on_b, 1 + per_replica))
    names = sorted(layer.name for layer in b.list_layers())
    assert len(names) == 1 + 2 * per_replica and len(set(names)) == len(names)  # unique names, none lost
    assert len(on_b.losses) == 1 + 2 * per_replica  # every apply's activity loss is recorded


def test_concurrent_run_updates_on_both_replicas_apply_every_update(
        replicas: list[ServerProcess], graph: str) -> None:
    a, b = _conns(replicas, graph)
    per_replica = 6
    base = np.array([[1, 2, 3], [4, 6, 8], [7, 10, 13], [0, 2, 4]], np.float32)
    orders = list(itertools.permutations(range(4)))[:2 * per_replica]
    inputs = [base[list(order)] for order in orders]  # same statistics, distinct inputs
    bn = a.layers.BatchNormalization(momentum=0.9)
    bn(base)
    on_b = b.list_layers()[0]

    def train(handle: layerserve.layers.Layer, mine: list[np.ndarray]) -> Callable[[], None]:
        def job() -> None:
            for x in mine:
                handle.apply(x, training=True)
                handle.run_updates(x)
        return job

    _parallel(train(bn, inputs[:per_replica]), train(on_b, inputs[per_replica:]))
    assert bn.updates == []
    moving_mean = next(v for v in on_b.variables if "moving_mean" in v.name).numpy()
    # every update moves the mean the same way: m <- m - (m - mean) * 0.1, from zero
    expected = base.mean(axis=0) * (1 - 0.9 ** len(inputs))
    np.testing.assert_allclose(moving_mean, expected, rtol=1e-5)


def _weights(url: str, graph: str, layer: str) -> tuple[list[np.ndarray], int]:
    got = httpx.get(f"{url}/v1/graphs/{graph}/layers/{layer}/weights")
    assert got.status_code == 200, got.text
    arrays = [np.asarray(w["data"], w["dtype"]).reshape(w["shape"]) for w in got.json()["weights"]]
    return arrays, int(got.headers["x-layer-version"])


def _put(url: str, graph: str, layer: str, arrays: list[np.ndarray], version: int | None = None) -> httpx.Response:
    body = {"weights": [{"dtype": "float32", "shape": list(a.shape), "data": a.ravel().tolist()} for a in arrays]}
    headers = {} if version is None else {"if-match": f'"{version}"'}
    return httpx.put(f"{url}/v1/graphs/{graph}/layers/{layer}/weights", json=body, headers=headers)


def test_if_match_read_modify_write_from_both_replicas_loses_no_increment(
        replicas: list[ServerProcess], graph: str) -> None:
    a, _ = _conns(replicas, graph)
    layer = a.layers.Dense(1, kernel_initializer=layerserve.initializers.Zeros())
    layer(X)
    per_replica, conflicts = 8, []

    def increments(url: str) -> Callable[[], None]:
        def job() -> None:
            done = 0
            while done < per_replica:
                arrays, version = _weights(url, graph, layer.name)
                put = _put(url, graph, layer.name, [arrays[0] + 1, arrays[1]], version)
                if put.status_code == 409:
                    assert put.json()["error"]["code"] == "version_conflict"
                    conflicts.append(put)
                    continue
                assert put.status_code == 200, put.text
                assert int(put.headers["x-layer-version"]) > version
                done += 1
        return job

    _parallel(*(increments(r.url) for r in replicas))
    final, _ = _weights(replicas[1].url, graph, layer.name)
    np.testing.assert_array_equal(final[0], np.full((4, 1), 2 * per_replica, np.float32))


def test_a_stale_if_match_gets_409_and_changes_nothing(replicas: list[ServerProcess], graph: str) -> None:
    a, _ = _conns(replicas, graph)
    layer = a.layers.Dense(2)
    layer(X)
    arrays, version = _weights(replicas[0].url, graph, layer.name)
    assert _put(replicas[1].url, graph, layer.name, [arrays[0] + 1, arrays[1]], version).status_code == 200
    stale = _put(replicas[0].url, graph, layer.name, [arrays[0] + 5, arrays[1]], version)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    np.testing.assert_array_equal(_weights(replicas[0].url, graph, layer.name)[0][0], arrays[0] + 1)
    bad = _put(replicas[0].url, graph, layer.name, arrays, None)
    assert bad.status_code == 200
    assert httpx.patch(f"{replicas[0].url}/v1/graphs/{graph}/layers/{layer.name}", json={"trainable": False},
                       headers={"if-match": "soon"}).status_code == 422


def test_killing_a_replica_mid_write_leaves_no_torn_version(
        tmp_path: Path, replicas: list[ServerProcess], redis_process: RedisProcess, graph: str) -> None:  # noqa: F811
    victim = _replica(tmp_path, redis_process).start()
    layer = layerserve.Connection(victim.url, graph=graph).layers.Dense(64)
    layer(np.ones((1, 256), np.float32))
    acknowledged, ended, written = [0], [], threading.Event()
    writer = Worker(_write_until_failure, layer, (256, 64), acknowledged, ended, written)
    writer.start()
    assert written.wait(30), "no write was acknowledged"
    victim.kill()
    join_all([writer], 30)
    assert len(ended) == 1 and isinstance(ended[0], TransportError), ended  # the kill, not an error reply
    kernel, bias = _weights(replicas[0].url, graph, layer.name)[0]
    assert kernel.min() == kernel.max() == bias.min() == bias.max()
    # the last acknowledged write survived (or the one whose reply the kill swallowed)
    assert acknowledged[0] >= 1 and kernel.flat[0] in (acknowledged[0], acknowledged[0] + 1)


def _write_until_failure(layer: layerserve.layers.Layer, shape: tuple[int, int], acknowledged: list[int],
                        ended: list[LayerServeError], written: threading.Event) -> None:
    """set_weights with every array all `step`, step 1, 2, ...; the last acknowledged step is
    kept, and the error that ended the stream is put in ``ended`` for the test to check."""
    for step in itertools.count(1):
        try:
            layer.set_weights([np.full(shape, step, np.float32), np.full(shape[1], step, np.float32)])
        except LayerServeError as exc:
            ended.append(exc)
            return
        acknowledged[0] = step
        written.set()


def test_a_redis_crash_with_persistence_loses_no_acknowledged_write(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis", persistent=True).start()
    replica = _replica(tmp_path, redis).start()
    try:
        layer = layerserve.Connection(replica.url, graph="durable").layers.Dense(8)
        layer(np.ones((1, 16), np.float32))
        acknowledged, ended, written = [0], [], threading.Event()
        writer = Worker(_write_until_failure, layer, (16, 8), acknowledged, ended, written)
        writer.start()
        assert written.wait(30), "no write was acknowledged"
        redis.kill()  # a crash: no shutdown save, only what the append-only file holds
        join_all([writer], 30)
        # the store went away under the writer: 503 store_unavailable, nothing else
        assert len(ended) == 1 and (ended[0].status, ended[0].code) == (503, "store_unavailable"), ended
        down = httpx.get(f"{replica.url}/v1/graphs/durable/layers/{layer.name}/weights")
        assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable"
        assert httpx.get(f"{replica.url}/readyz").status_code == 503
        redis.start()
        kernel, bias = _weights(replica.url, "durable", layer.name)[0]
        # the last acknowledged write, or the one whose reply the crash swallowed
        assert kernel.min() == kernel.max() == bias.min() == bias.max()
        assert acknowledged[0] >= 1 and kernel.flat[0] in (acknowledged[0], acknowledged[0] + 1)
        replica.stop()
        fresh = _replica(tmp_path, redis).start()
        try:
            np.testing.assert_array_equal(_weights(fresh.url, "durable", layer.name)[0][0], kernel)
        finally:
            fresh.stop()
    finally:
        replica.stop()
        redis.stop()
