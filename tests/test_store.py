"""The store contract, run against both stores: the state directory and Redis.

A data plane over a store is the writer; a second data plane over a new store on the same
backing (the same directory, the same Redis) is a restart or, for Redis, another replica.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layerserve.protocol import input_ref
from layerserve.server.api import views
from layerserve.server.config import Settings
from layerserve.server.errors import Conflict
from layerserve.server.plane import DataPlane
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import SessionCache
from layerserve.server.store.base import StaleGraph, StateStore
from layerserve.server.store.codec import graph_to_json, layer_to_json, records_to_json
from layerserve.server.store.filesystem import FilesystemStore
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.test_custom_layers import _config, _model_bytes
from tests.threads import Worker, join_all

Planes = Callable[..., DataPlane]
_graphs = itertools.count(1)
X = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def _plane(store: StateStore, **settings: Any) -> DataPlane:
    return DataPlane(Settings(**settings), store, Executor(SessionCache(select_providers(["cpu"]), 16, 1)))


@pytest.fixture(params=["filesystem", "redis"])
def planes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Planes]:
    """Makes data planes over new store instances on one backing store."""
    stores: list[StateStore] = []

    def make(**settings: Any) -> DataPlane:
        if request.param == "filesystem":
            store: StateStore = FilesystemStore(tmp_path / "state")
        else:
            from layerserve.server.store.redis import RedisStore

            redis: RedisProcess = request.getfixturevalue("redis_process")
            store = RedisStore(redis.url, keep_versions=2)
        stores.append(store)
        return _plane(store, **settings)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def graph() -> str:
    return f"store{next(_graphs)}"


def _dense(plane: DataPlane, graph: str, **config: object) -> str:
    layer = plane.create_layer(graph, "Dense", {"units": 2, **config})
    plane.apply(graph, layer.id, [X])
    return layer.id


def test_a_new_store_reads_what_was_committed(planes: Planes, graph: str) -> None:
    writer = planes()
    first = _dense(writer, graph, activity_regularizer={"l1": 0.5})
    second = writer.create_layer(graph, "Dense", {"units": 3}, name="head").id
    weights = [np.full((4, 2), 0.25, np.float32), np.array([1, -1], np.float32)]
    writer.set_weights(graph, first, weights)
    y = writer.apply(graph, first, [X]).outputs[0]
    reader = planes()
    assert [v["name"] for v in views.list_layers(reader, graph)] == ["dense_1", "head"]
    for got, want in zip(reader.get_weights(graph, first)[1], weights):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(reader.apply(graph, first, [X]).outputs[0], y)
    assert len(reader.losses(graph, first)) == 3  # three applies recorded their activity loss
    assert views.describe(reader, graph, second)["built"] is False
    assert reader.create_layer(graph, "Dense", {"units": 1}).name == "dense_2"  # counters survived
    assert [views.describe(reader, graph, i)["version"] for i in (first, second)] == [
        views.describe(writer, graph, i)["version"] for i in (first, second)]


def test_versions_move_with_definition_and_values_only(planes: Planes, graph: str) -> None:
    plane = planes()
    a, b = _dense(plane, graph), _dense(plane, graph)
    va, vb = plane.version(graph, a), plane.version(graph, b)
    plane.set_weights(graph, a, [np.ones((4, 2), np.float32), np.zeros(2, np.float32)])
    assert plane.version(graph, a) > va and plane.version(graph, b) == vb
    va = plane.version(graph, a)
    plane.apply(graph, a, [X])  # an apply records nothing here and changes no version
    assert plane.version(graph, a) == va
    plane.patch_layer(graph, a, trainable=False)
    assert plane.version(graph, a) > va
    assert planes().version(graph, a) == plane.version(graph, a)


def test_shared_variables_move_every_owner(planes: Planes, graph: str) -> None:
    plane = planes()
    owner = plane.create_layer(graph, "Dense", {"units": 2}, scope="fc").id
    plane.apply(graph, owner, [X])
    sharer = plane.create_layer(graph, "Dense", {"units": 2}, scope="fc", reuse=True).id
    plane.apply(graph, sharer, [X])
    before = plane.version(graph, sharer)
    plane.set_weights(graph, owner, [np.ones((4, 2), np.float32), np.ones(2, np.float32)])
    assert plane.version(graph, sharer) > before
    np.testing.assert_array_equal(planes().get_weights(graph, sharer)[1][1], np.ones(2, np.float32))


def test_if_match_refuses_another_version(planes: Planes, graph: str) -> None:
    plane = planes()
    layer = _dense(plane, graph)
    version = plane.version(graph, layer)
    weights = [np.ones((4, 2), np.float32), np.ones(2, np.float32)]
    plane.set_weights(graph, layer, weights, if_match=version)
    with pytest.raises(Conflict) as caught:
        plane.set_weights(graph, layer, [w * 2 for w in weights], if_match=version)
    assert caught.value.code == "version_conflict"
    np.testing.assert_array_equal(planes().get_weights(graph, layer)[1][0], weights[0])


def test_delete_removes_the_layer_and_its_variables(planes: Planes, graph: str) -> None:
    plane = planes()
    keep, gone = _dense(plane, graph), _dense(plane, graph)
    plane.delete_layer(graph, gone)
    reader = planes()
    assert [v["id"] for v in views.list_layers(reader, graph)] == [keep]
    assert [v["name"] for v in views.global_variables(reader, graph)] == ["dense/kernel:0", "dense/bias:0"]


def test_a_copy_read_before_another_commit_is_stale(planes: Planes, graph: str) -> None:
    first = planes()
    if not first.store.shared:
        pytest.skip("the state directory has one writer process; nothing else commits to it")
    layer = _dense(first, graph)
    second = planes()
    stale = second.graph(graph)
    first.set_weights(graph, layer, [np.ones((4, 2), np.float32), np.ones(2, np.float32)])
    stale.layers[layer].trainable = False
    with pytest.raises(StaleGraph):
        second.store.commit(stale)
    # the data plane's writes reload and retry instead: the flip lands on the new weights
    second.patch_layer(graph, layer, trainable=False)
    np.testing.assert_array_equal(first.get_weights(graph, layer)[1][1], np.ones(2, np.float32))
    assert views.describe(first, graph, layer)["trainable"] is False


def test_commits_are_announced_to_watchers(planes: Planes, graph: str) -> None:
    watcher = planes()
    if not watcher.store.shared:
        pytest.skip("only a shared store has other writers to announce")
    heard: list[tuple[str, int]] = []
    done = threading.Event()

    def on_commit(name: str, revision: int) -> None:
        if name == graph:
            heard.append((name, revision))
            done.set()

    watcher.store.watch(on_commit)
    writer = planes()
    for _ in range(50):  # the subscription starts in the background: write until it hears one
        _dense(writer, graph)
        if done.wait(0.2):
            break
    assert heard and heard[-1][1] <= writer.graph(graph).revision
    assert watcher.graph(graph).revision == writer.graph(graph).revision


# ---- records and blobs ------------------------------------------------------------------
L1 = {"l1": 1.0}


def _counting(plane: DataPlane, graph: str) -> str:
    """Dense(1) with kernel ones and an l1 activity regularizer: input ``_x(v)`` records loss 6v."""
    layer = plane.create_layer(graph, "Dense", {"units": 1, "activity_regularizer": L1}, name="counting").id
    plane.build(graph, layer, [None, 6])
    plane.set_weights(graph, layer, [np.ones((6, 1), np.float32), np.zeros(1, np.float32)])
    return layer


def _x(v: int) -> np.ndarray:
    return np.full((1, 6), v, np.float32)


def _recorded(plane: DataPlane, graph: str, layer: str) -> list[tuple[str, float]]:
    return [(loss["input"], float(loss["value"])) for loss in plane.losses(graph, layer)]


def test_records_survive_restarts_through_spills_and_evictions(planes: Planes, graph: str) -> None:
    """150 recorded applies with room for 100 records, a restart every 40: every restart reads
    exactly the last 100 losses, in order, whatever mix of inline records and record objects
    (spilled, merged, partly evicted) the store holds them in."""
    plane = planes(max_records_per_layer=100)
    layer = _counting(plane, graph)
    for v in range(150):
        if v % 40 == 39:
            plane = planes(max_records_per_layer=100)
        plane.apply(graph, layer, [_x(v)])
        want = [(input_ref(_x(u)), 6.0 * u) for u in range(max(0, v - 99), v + 1)]
        if v % 40 == 39 or v == 149:
            assert _recorded(plane, graph, layer) == want
    assert _recorded(planes(max_records_per_layer=100), graph, layer) == want


def _updates(plane: DataPlane, graph: str, layer: str) -> list[tuple[str, str, list[float]]]:
    return [(u.ref, u.variable, u.value.tolist()) for u in plane.updates_for(graph, layer, None, everything=True)]


def test_run_updates_consuming_records_survives_a_restart(planes: Planes, graph: str) -> None:
    """Updates consumed out of the middle, then all of them: a restart sees what is left and
    the moving statistics they were applied to."""
    plane = planes()
    bn = plane.create_layer(graph, "BatchNormalization", {"momentum": 0.5}).id
    batches = [np.array([[v, -v], [2 * v, v]], np.float32) for v in range(1, 41)]  # 80 update records
    for x in batches:
        plane.apply(graph, bn, [x], training=True)
    plane.run_updates(graph, bn, [input_ref(x) for x in batches[10:20]])
    left = _updates(plane, graph, bn)
    assert len(left) == 60
    restarted = planes()
    assert _updates(restarted, graph, bn) == left
    for got, want in zip(restarted.get_weights(graph, bn)[1], plane.get_weights(graph, bn)[1]):
        np.testing.assert_array_equal(got, want)
    restarted.run_updates(graph, bn, None)
    again = planes()
    assert _updates(again, graph, bn) == []
    for got, want in zip(again.get_weights(graph, bn)[1], restarted.get_weights(graph, bn)[1]):
        np.testing.assert_array_equal(got, want)


def _stored_bytes(store: StateStore, graph: str) -> dict[str, bytes]:
    """What the store holds for the graph, by file name or key."""
    if isinstance(store, FilesystemStore):
        return {str(p.relative_to(store.root)): p.read_bytes() for p in (store.root / "graphs" / graph).rglob("*")
                if p.is_file()}
    client = store.client  # type: ignore[attr-defined]
    read = {b"string": client.get, b"hash": lambda k: b"".join(sum(client.hgetall(k).items(), ())),
            b"list": lambda k: b"".join(client.lrange(k, 0, -1)), b"zset": lambda k: b"".join(client.zrange(k, 0, -1))}
    return {k.decode(): read[client.type(k)](k) for k in client.scan_iter(f"ls:{{{graph}}}:*")}


def test_a_custom_layers_model_is_stored_once(planes: Planes, graph: str) -> None:
    raw = _model_bytes(pad=20_000)  # a model of 160 KB
    plane = planes()
    layer = plane.create_layer(graph, "Layer", _config(raw)).id
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for _ in range(3):
        y = plane.apply(graph, layer, [x], training=True).outputs[0]  # commits a record each time
    held = _stored_bytes(plane.store, graph)
    digest = hashlib.sha256(raw).hexdigest()
    assert [k for k in held if digest in k] and not [k for k, v in held.items() if digest not in k and len(v) > 100_000]
    assert base64.b64encode(raw)[:1000] not in b"".join(v for k, v in held.items() if digest not in k)
    np.testing.assert_array_equal(planes().apply(graph, layer, [x]).outputs[0], y)
    plane = planes()
    plane.delete_layer(graph, layer)
    for _ in range(3):  # a dropped blob outlives the versions readers may still hold (keep_versions=2)
        _dense(plane, graph)
    assert not [k for k in _stored_bytes(plane.store, graph) if digest in k]


def _to_previous_layout(plane: DataPlane, graph: str) -> None:
    """Rewrite the stored graph as the previous release stored it: models inline in the layer
    configs, every record of a layer in one piece (a blob file, or its ``R:`` entry)."""
    g = plane.graph(graph)
    inline = {f"L:{i}": layer_to_json(layer) for i, layer in g.layers.items()}
    for i, data in inline.items():
        config = g.layers[i[2:]].kind.config
        if "model" in config:
            data["config"] = {**data["config"], "model": config["model"]}
    records = {i: records_to_json(layer) for i, layer in g.layers.items() if layer.losses or layer.updates}
    store = plane.store
    if isinstance(store, FilesystemStore):  # format 1: the whole graph in the manifest, a file per value
        directory = store.root / "graphs" / graph
        for path in (directory / "blobs").iterdir():
            path.unlink()
        values = {}
        for k, (name, value) in enumerate(g.values.items()):
            np.save(directory / "blobs" / f"old-{k}.npy", value)
            values[name] = f"old-{k}.npy"
        for i, held in records.items():
            (directory / "blobs" / f"old-{i}.json").write_text(json.dumps(held))
        manifest = {"format": 1, "graph": {**graph_to_json(g), "layers": list(inline.values())},
                    "blobs": {"variables": values, "records": {i: f"old-{i}.json" for i in records}}}
        (directory / "manifest.json").write_text(json.dumps(manifest))
        return
    client = store.client  # type: ignore[attr-defined]
    head = {k.decode(): v.decode() for k, v in client.hgetall(f"ls:{{{graph}}}:head").items()}
    for field, data in [*inline.items(), *((f"R:{i}", held) for i, held in records.items())]:
        client.set(f"ls:{{{graph}}}:e:{field}@{head[field]}", json.dumps(data))
    for key in client.scan_iter(f"ls:{{{graph}}}:o:*"):
        client.delete(key)


def test_a_graph_stored_by_the_previous_release_loads_and_is_upgraded(planes: Planes, graph: str) -> None:
    plane = planes(max_records_per_layer=100)
    custom = plane.create_layer(graph, "Layer", _config()).id
    counting = _counting(plane, graph)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = plane.apply(graph, custom, [x], training=True).outputs[0]
    for v in range(80):
        plane.apply(graph, counting, [_x(v)])
    _to_previous_layout(plane, graph)
    old = planes(max_records_per_layer=100)
    np.testing.assert_array_equal(old.apply(graph, custom, [x]).outputs[0], y)
    assert _recorded(old, graph, counting) == [(input_ref(_x(v)), 6.0 * v) for v in range(80)]
    old.apply(graph, counting, [_x(80)])
    old.patch_layer(graph, custom, trainable=False)  # its definition is rewritten in the new layout
    new = planes(max_records_per_layer=100)
    assert _recorded(new, graph, counting) == [(input_ref(_x(v)), 6.0 * v) for v in range(81)]
    np.testing.assert_array_equal(new.apply(graph, custom, [x]).outputs[0], y)
    assert views.describe(new, graph, custom)["trainable"] is False


def test_replicas_recording_at_once_lose_no_record(planes: Planes, graph: str) -> None:
    first = planes()
    if not first.store.shared:
        pytest.skip("the state directory has one writer process")
    layer = _counting(first, graph)
    second = planes()
    inputs = {0: range(0, 90, 2), 1: range(1, 90, 2)}
    workers = [Worker(lambda p=p, k=k: [p.apply(graph, layer, [_x(v)]) for v in inputs[k]])
               for k, p in enumerate((first, second))]
    for worker in workers:
        worker.start()
    join_all(workers)
    held = _recorded(planes(), graph, layer)
    assert sorted(held, key=lambda r: r[1]) == [(input_ref(_x(v)), 6.0 * v) for v in range(90)]
    assert held == _recorded(first, graph, layer) == _recorded(second, graph, layer)
