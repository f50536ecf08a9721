"""Processes the benchmark talks to: a layerserve server and a bare FastAPI echo, on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["Process", "echo_server", "layerserve_server", "store_server"]

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, cmd: list[str], port: int, ready_path: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{cmd[:4]} did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def layerserve_server(*args: str) -> Process:
    port, state = _free_port(), tempfile.mkdtemp(prefix="layerserve-bench-")
    cmd = [sys.executable, "-m", "layerserve.server", "serve", "--port", str(port), "--state-dir", state,
           "--log-level", "warning", *args]
    return Process(cmd, port, "/readyz")


def echo_server() -> Process:
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", "benchmarks.echo:app", "--host", "127.0.0.1", "--port", str(port),
           "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    return Process(cmd, port, "/ping")


@contextmanager
def store_server(store: str, tmp: Path, tag: str, *args: str) -> Iterator[str]:
    """A layerserve server (``args``: its flags) on a state directory under ``tmp``, or, for
    ``store="redis"``, on a redis-server of its own; yields the server's URL."""
    from tests.redis_server import RedisProcess
    from tests.server import ServerProcess

    redis = RedisProcess(tmp / f"redis-{tag}").start() if store == "redis" else None
    extra = ["--store", redis.url] if redis is not None else []
    server = ServerProcess(tmp / f"state-{store}-{tag}", *args, *extra).start()
    try:
        yield server.url
    finally:
        server.stop()
        if redis is not None:
            redis.stop()
