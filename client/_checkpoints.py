"""A connection's calls for the server's named checkpoints and version history.

Checkpoints travel as TensorFlow's two files (``layerserve.checkpoint``): a download writes
``prefix.index`` and ``prefix.data-00000-of-00001``, which ``tf.train.load_checkpoint(prefix)``
reads; an upload sends the two files TensorFlow's ``Saver`` wrote, as a tar. The requests are
built here once; ``CheckpointCalls`` sends them for ``Connection``, ``AsyncCheckpointCalls`` for
``AsyncConnection``.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from layerserve._core import Call, Result, parse_response
from layerserve.checkpoint import DATA_SUFFIX, INDEX_SUFFIX

__all__ = ["AsyncCheckpointCalls", "CheckpointCalls"]

_JSON = {"accept": "application/json"}
_FILES = (("data", DATA_SUFFIX), ("index", INDEX_SUFFIX))


def _path(graph: str, suffix: str = "") -> str:
    return f"/v1/graphs/{quote(graph, safe='')}/checkpoints{suffix}"


def _named(graph: str, name: str, suffix: str = "") -> str:
    return _path(graph, f"/{quote(name, safe='')}{suffix}")


def _call(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Call:
    return Call(method, path, {**_JSON, **(headers or {})}, body)


def _create(graph: str, name: str) -> Call:
    return _call("POST", _path(graph), json.dumps({"name": name}).encode(), {"content-type": "application/json"})


def _restore(graph: str, name: str, if_match: int | None) -> Call:
    return _call("POST", _named(graph, name, ":restore"), None, {} if if_match is None else {"if-match": str(if_match)})


def _upload(graph: str, name: str, prefix: str | os.PathLike[str]) -> Call:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for suffix in (INDEX_SUFFIX, DATA_SUFFIX):
            tar.add(str(prefix) + suffix, arcname=Path(str(prefix)).name + suffix)
    return _call("PUT", _named(graph, name), buffer.getvalue(), {"content-type": "application/x-tar"})


def _file(graph: str, name: str, kind: str) -> Call:
    return Call("GET", _named(graph, name, "/files"), {}, None, {"file": kind})


def _versions(graph: str) -> Call:
    return _call("GET", f"/v1/graphs/{quote(graph, safe='')}/versions")


def _keep(prefix: str | os.PathLike[str], suffix: str, status: int, headers: dict[str, str], content: bytes) -> None:
    if status >= 400:
        parse_response(status, headers, content)  # raises the error the body describes
    Path(str(prefix) + suffix).write_bytes(content)


class CheckpointCalls:
    """Mixed into ``Connection``: it provides ``graph``, ``send`` and ``_exchange``."""

    graph: str

    def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        raise NotImplementedError

    def _exchange(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def create_checkpoint(self, name: str) -> dict[str, Any]:
        """Snapshot every variable of the graph on the server, as checkpoint ``name`` (immutable)."""
        return dict(self.send(_create(self.graph, name)).body)

    def list_checkpoints(self) -> list[dict[str, Any]]:
        return list(self.send(_call("GET", _path(self.graph))).body["checkpoints"])

    def describe_checkpoint(self, name: str) -> dict[str, Any]:
        return dict(self.send(_call("GET", _named(self.graph, name))).body)

    def delete_checkpoint(self, name: str) -> None:
        self.send(_call("DELETE", _named(self.graph, name)))

    def restore_checkpoint(self, name: str, *, if_match: int | None = None) -> dict[str, Any]:
        """Assign every variable of the graph from checkpoint ``name`` in one commit; ``if_match``:
        the graph version the restore expects (409 ``version_conflict`` otherwise)."""
        return dict(self.send(_restore(self.graph, name, if_match)).body)

    def versions(self) -> dict[str, Any]:
        """The graph's version history: ``{"version", "versions": [{version, time, cause, ...}], ...}``."""
        return dict(self.send(_versions(self.graph)).body)

    def download_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> str:
        """Write checkpoint ``name`` as TensorFlow's files at ``prefix``; returns the prefix."""
        for kind, suffix in _FILES:
            _keep(prefix, suffix, *self._exchange(_file(self.graph, name, kind)))
        return str(prefix)

    def upload_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> dict[str, Any]:
        """Send the checkpoint TensorFlow wrote at ``prefix`` to the server as checkpoint ``name``."""
        return dict(self.send(_upload(self.graph, name, prefix)).body)


class AsyncCheckpointCalls:
    """The same for ``AsyncConnection``: it provides ``graph``, ``send`` and ``transport``."""

    graph: str
    transport: Any

    async def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        raise NotImplementedError

    async def create_checkpoint(self, name: str) -> dict[str, Any]:
        return dict((await self.send(_create(self.graph, name))).body)

    async def list_checkpoints(self) -> list[dict[str, Any]]:
        return list((await self.send(_call("GET", _path(self.graph)))).body["checkpoints"])

    async def describe_checkpoint(self, name: str) -> dict[str, Any]:
        return dict((await self.send(_call("GET", _named(self.graph, name)))).body)

    async def delete_checkpoint(self, name: str) -> None:
        await self.send(_call("DELETE", _named(self.graph, name)))

    async def restore_checkpoint(self, name: str, *, if_match: int | None = None) -> dict[str, Any]:
        return dict((await self.send(_restore(self.graph, name, if_match))).body)

    async def versions(self) -> dict[str, Any]:
        return dict((await self.send(_versions(self.graph))).body)

    async def download_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> str:
        for kind, suffix in _FILES:
            call = _file(self.graph, name, kind)
            _keep(prefix, suffix, *await self.transport.request(call.method, call.path, call.headers, None,
                                                                call.params))
        return str(prefix)

    async def upload_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> dict[str, Any]:
        return dict((await self.send(_upload(self.graph, name, prefix))).body)
