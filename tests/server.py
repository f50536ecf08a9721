"""Real layerserve servers for the tests: a subprocess on 127.0.0.1, a free port, a temp state dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port"]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m layerserve.server serve`` in a subprocess; ``start()`` waits until ``/readyz`` says ready."""

    def __init__(self, state_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None,
                 max_file_bytes: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.max_file_bytes = max_file_bytes  # RLIMIT_FSIZE of the server: writes past it fail (a full disk)
        self.log_path = self.state_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (``start`` waits until ready)."""
        cmd = [sys.executable, "-m", "layerserve.server", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--state-dir", str(self.state_dir), "--log-level", "warning", *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=self._limit_files if self.max_file_bytes is not None else None)
        return self

    def _limit_files(self) -> None:
        import resource

        assert self.max_file_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
