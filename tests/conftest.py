"""Fixtures: one real server for the session, a fresh graph (and connection) per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

import layerserve
from tests.server import ServerProcess

_graph_ids = itertools.count(1)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("state") / "state").start()
    yield proc
    proc.stop()


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[layerserve.Connection]:
    """A connection to a graph of its own: like a fresh ``tf.Graph()``, naming starts anew."""
    connection = layerserve.connect(server.url, graph=f"g{next(_graph_ids)}")
    yield connection
    connection.close()


@pytest.fixture
def json_conn(server: ServerProcess) -> Iterator[layerserve.Connection]:
    connection = layerserve.connect(server.url, graph=f"g{next(_graph_ids)}", binary=False)
    yield connection
    connection.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
