"""A commit whose reply is lost: Redis ran the commit script, then became unreachable before the
replica read the answer. The write answers 503; once Redis is back, the replica serves what the
store holds (the commit happened), not the copy it rolled back.

A TCP relay of the test's own sits between the replica and a real redis-server, and cuts the
connection right after Redis answered the commit script, refusing new connections until told."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from layerserve.server.config import Settings
from layerserve.server.errors import StoreUnavailable
from layerserve.server.plane import DataPlane
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import SessionCache
from layerserve.server.store.redis import RedisStore
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.threads import Worker, join_all


class _Relay:
    """127.0.0.1 relay to Redis; ``cut_after_script`` drops the next script's reply and goes dark."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_after_script = threading.Event()
        self.dark = threading.Event()
        self.cut = threading.Event()  # set once a script's reply was dropped
        self.workers: list[Worker] = []

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.dark.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            worker = Worker(self._pump, client, upstream)
            worker.start()
            self.workers.append(worker)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Requests and their replies in turn (redis-py sends one command, then reads its reply)."""
        with client, upstream:
            while data := _recv(client):
                upstream.sendall(data)
                reply = _recv(upstream)
                if self.cut_after_script.is_set() and b"EVALSHA" in data.upper():
                    self.dark.set()
                    self.cut.set()
                    return  # Redis ran the script; its reply goes nowhere
                client.sendall(reply)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    with contextlib.suppress(OSError):
        return sock.recv(1 << 20)
    return b""


@pytest.fixture
def relay(redis_process: RedisProcess) -> Iterator[_Relay]:  # noqa: F811
    host, port = redis_process.url.removeprefix("redis://").split("/")[0].split(":")
    relay = _Relay((host, int(port)))
    accepting = Worker(relay.serve)
    accepting.start()
    yield relay
    relay.close()
    join_all([accepting, *relay.workers], 15)  # the store closed its connections: every pump ends


def _weights(v: float) -> list[np.ndarray]:
    return [np.full((3, 2), v, np.float32), np.full(2, v, np.float32)]


def test_a_commit_whose_reply_was_lost_is_read_back_from_the_store(relay: _Relay, tmp_path: Path) -> None:
    store = RedisStore(f"redis://127.0.0.1:{relay.port}/0", keep_versions=2)
    plane = DataPlane(Settings(), store, Executor(SessionCache(select_providers(["cpu"]), 16, 1)))
    try:
        plane.create_layer("lost", "Dense", {"units": 2}, name="fc")
        plane.build("lost", "fc", [None, 3])
        plane.set_weights("lost", "fc", _weights(1))
        relay.cut_after_script.set()
        with pytest.raises(StoreUnavailable):
            plane.set_weights("lost", "fc", _weights(2))
        assert relay.cut.is_set()  # the script ran in Redis: only its reply was lost
        relay.dark.clear()
        relay.cut_after_script.clear()
        kernel = plane.get_weights("lost", "fc")[1][0]
        assert float(kernel.flat[0]) == 2.0  # before: 1.0, the rolled-back copy passed for the new revision
    finally:
        store.close()
