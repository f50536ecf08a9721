"""A real ``redis-server`` for the tests: 127.0.0.1, a free port, its own directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.server import free_port

__all__ = ["RedisProcess", "redis_process", "require_redis_server"]

SKIP_ENV = "LAYERSERVE_SKIP_REDIS_TESTS"


def require_redis_server() -> str:
    """The binary's path; without one the tests fail with how to get it (or skip, when asked to)."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    message = ("redis-server is not installed, and the Redis store tests need a real one: install it with "
               "`apt-get install -y redis-server` (`make test` does this on Debian), or set "
               f"{SKIP_ENV}=1 to skip these tests")
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(message)
    pytest.fail(message)


class RedisProcess:
    """``redis-server`` in a subprocess; ``persistent`` turns on the append-only file, fsynced
    before every reply, so that a crash loses no acknowledged write."""

    def __init__(self, directory: Path, *, persistent: bool = False, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        cmd = [require_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
               "--save", "", *aof, "--logfile", str(self.directory / "redis.log")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield proc
    proc.stop()
