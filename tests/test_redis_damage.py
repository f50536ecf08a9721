"""The Redis store when an entry goes wrong: a graph whose entry cannot be decoded (bad JSON, a
value of another shape or dtype than its variable, a key that is gone) is reported by key as
``graph_damaged`` (503) and listed by ``/readyz``, which stays ready, while every other graph is
served; nothing overwrites the damaged graph. As the state directory does (test_store_faults)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.server import ServerProcess
from tests.test_hostile import assert_error


@pytest.fixture
def store(redis_process: RedisProcess) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis.from_url(redis_process.url)
    client.flushdb()
    yield client
    client.close()


def _server(tmp_path: Path, url: str) -> ServerProcess:
    return ServerProcess(tmp_path / "state", "--store", url)


def _two_graphs(tmp_path: Path, url: str) -> ServerProcess:
    server = _server(tmp_path, url).start()
    for graph in ("good", "bad"):
        with httpx.Client(base_url=f"{server.url}/v1/graphs/{graph}", timeout=30) as http:
            assert http.post("/layers", json={"class": "Dense", "name": "fc", "config": {"units": 2}}).status_code == 201
            assert http.post("/layers/fc/build", json={"input_shape": [None, 3]}).status_code == 200
    server.stop()
    return server


def _entry_key(client: redis.Redis, graph: str, match: Callable[[str], bool]) -> str:
    """The key of the version the graph's head names for the first field ``match`` accepts."""
    head = {k.decode(): v.decode() for k, v in client.hgetall(f"ls:{{{graph}}}:head").items()}
    field = next(f for f in head if f not in ("rev", "commit") and match(f))
    return f"ls:{{{graph}}}:e:{field}@{head[field]}"


def _npy(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return buffer.getvalue()


def _assert_bad_graph_reported(server: ServerProcess, key: str) -> None:
    good = httpx.get(f"{server.url}/v1/graphs/good/layers/fc/weights")
    assert good.status_code == 200, good.text  # the other graph is served
    error = assert_error(httpx.get(f"{server.url}/v1/graphs/bad/layers/fc"), 503, "graph_damaged")
    assert key in error["message"], error["message"]
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
    assert key in ready.json()["damaged_graphs"]["bad"]
    created = httpx.post(f"{server.url}/v1/graphs/bad/layers", json={"class": "Dense", "config": {"units": 1}})
    assert_error(created, 503, "graph_damaged")  # nothing overwrites the damaged graph


def _with_damage(tmp_path: Path, redis_process: RedisProcess, store: redis.Redis,  # noqa: F811
                 damage: Callable[[], str]) -> None:
    server = _two_graphs(tmp_path, redis_process.url)
    key = damage()
    server.start()  # before: the whole server never became ready
    try:
        _assert_bad_graph_reported(server, key)
    finally:
        server.stop()


def test_an_entry_that_is_not_json_takes_only_its_graph_out(tmp_path: Path, redis_process: RedisProcess,  # noqa: F811
                                                            store: redis.Redis) -> None:
    def damage() -> str:
        key = _entry_key(store, "bad", lambda f: f.startswith("L:"))
        store.set(key, b"{not json")
        return key
    _with_damage(tmp_path, redis_process, store, damage)
    assert store.get(_entry_key(store, "bad", lambda f: f.startswith("L:"))) == b"{not json"  # kept for repair


def test_a_value_of_another_shape_is_not_loaded(tmp_path: Path, redis_process: RedisProcess,  # noqa: F811
                                                store: redis.Redis) -> None:
    def damage() -> str:
        key = _entry_key(store, "bad", lambda f: f.startswith("V:") and "kernel" in f)
        store.set(key, _npy(np.zeros((5, 7), np.float64)))
        return key
    _with_damage(tmp_path, redis_process, store, damage)  # before: loaded as a (3, 2) float32 kernel


def test_a_value_that_is_not_an_array_is_reported(tmp_path: Path, redis_process: RedisProcess,  # noqa: F811
                                                  store: redis.Redis) -> None:
    def damage() -> str:
        key = _entry_key(store, "bad", lambda f: f.startswith("V:") and "bias" in f)
        store.set(key, b"not an array")
        return key
    _with_damage(tmp_path, redis_process, store, damage)


def test_a_missing_entry_is_reported(tmp_path: Path, redis_process: RedisProcess,  # noqa: F811
                                     store: redis.Redis) -> None:
    def damage() -> str:
        key = _entry_key(store, "bad", lambda f: f == "G")
        store.delete(key)
        return key
    _with_damage(tmp_path, redis_process, store, damage)  # before: 503 store_busy for that graph, never named


def test_a_bad_entry_committed_while_serving_is_reported(tmp_path: Path, redis_process: RedisProcess,  # noqa: F811
                                                         store: redis.Redis) -> None:
    """As another replica writing garbage would: a new head revision naming an undecodable version."""
    server = _two_graphs(tmp_path, redis_process.url).start()
    try:
        assert httpx.get(f"{server.url}/v1/graphs/bad/layers/fc").status_code == 200
        head = "ls:{bad}:head"
        revision = int(store.hget(head, "rev") or 0) + 1
        field = next(f.decode() for f in store.hkeys(head) if f.startswith(b"L:"))
        key = f"ls:{{bad}}:e:{field}@{revision}"
        store.set(key, b"[1, 2")
        store.hset(head, mapping={field: revision, "rev": revision})
        _assert_bad_graph_reported(server, key)  # before: 500
    finally:
        server.stop()
