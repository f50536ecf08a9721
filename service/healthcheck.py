"""``python -m layerserve.server.healthcheck``: exit 0 when the local server is ready (``/readyz``).

The container's health probe: healthy means the state is loaded (the Redis store reachable)
and ONNX Runtime runs, so ``docker compose up --wait`` and dependants wait for a server that
can answer. It uses only the standard library and the server's own ``LAYERSERVE_PORT`` so that
it needs neither curl in the image nor a port of its own.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

__all__ = ["check"]


def check(port: int, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(0 if check(int(os.environ.get("LAYERSERVE_PORT", "8000"))) else 1)
