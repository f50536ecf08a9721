"""A connection's calls for the server's named checkpoints and version history.

Checkpoints travel as TensorFlow's two files (``layerserve.checkpoint``): a download writes
``prefix.index`` and ``prefix.data-00000-of-00001``, which ``tf.train.load_checkpoint(prefix)``
reads; an upload sends the two files TensorFlow's ``Saver`` wrote, as a tar.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from layerserve._core import Call, Result, parse_response
from layerserve.checkpoint import DATA_SUFFIX, INDEX_SUFFIX

__all__ = ["CheckpointCalls"]

_JSON = {"accept": "application/json"}


class CheckpointCalls:
    """Mixed into ``Connection``: it provides ``graph``, ``send`` and ``_exchange``."""

    graph: str

    def send(self, call: Call, tensor_key: str = "outputs") -> Result:
        raise NotImplementedError

    def _exchange(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def _checkpoints(self, suffix: str = "") -> str:
        return f"/v1/graphs/{quote(self.graph, safe='')}/checkpoints{suffix}"

    def _json(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        return self.send(Call(method, path, {**_JSON, **(headers or {})}, body)).body

    def create_checkpoint(self, name: str) -> dict[str, Any]:
        """Snapshot every variable of the graph on the server, as checkpoint ``name`` (immutable)."""
        import json

        return dict(self._json("POST", self._checkpoints(), json.dumps({"name": name}).encode(),
                               {"content-type": "application/json"}))

    def list_checkpoints(self) -> list[dict[str, Any]]:
        return list(self._json("GET", self._checkpoints())["checkpoints"])

    def describe_checkpoint(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", self._checkpoints(f"/{quote(name, safe='')}")))

    def delete_checkpoint(self, name: str) -> None:
        self._json("DELETE", self._checkpoints(f"/{quote(name, safe='')}"))

    def restore_checkpoint(self, name: str, *, if_match: int | None = None) -> dict[str, Any]:
        """Assign every variable of the graph from checkpoint ``name`` in one commit; ``if_match``:
        the graph version the restore expects (409 ``version_conflict`` otherwise)."""
        headers = {} if if_match is None else {"if-match": str(if_match)}
        return dict(self._json("POST", self._checkpoints(f"/{quote(name, safe='')}:restore"), None, headers))

    def versions(self) -> dict[str, Any]:
        """The graph's version history: ``{"version", "versions": [{version, time, cause, ...}], ...}``."""
        return dict(self._json("GET", f"/v1/graphs/{quote(self.graph, safe='')}/versions"))

    def download_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> str:
        """Write checkpoint ``name`` as TensorFlow's files at ``prefix``; returns the prefix."""
        path = self._checkpoints(f"/{quote(name, safe='')}/files")
        for kind, suffix in (("data", DATA_SUFFIX), ("index", INDEX_SUFFIX)):
            status, headers, content = self._exchange(Call("GET", path, {}, None, {"file": kind}))
            if status >= 400:
                parse_response(status, headers, content)
            Path(str(prefix) + suffix).write_bytes(content)
        return str(prefix)

    def upload_checkpoint(self, name: str, prefix: str | os.PathLike[str]) -> dict[str, Any]:
        """Send the checkpoint TensorFlow wrote at ``prefix`` to the server as checkpoint ``name``."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for suffix in (INDEX_SUFFIX, DATA_SUFFIX):
                tar.add(str(prefix) + suffix, arcname=Path(str(prefix)).name + suffix)
        return dict(self._json("PUT", self._checkpoints(f"/{quote(name, safe='')}"), buffer.getvalue(),
                               {"content-type": "application/x-tar"}))
