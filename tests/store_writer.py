"""A process that writes versions into a state directory until it dies at a chosen fsync.

``python -m tests.store_writer STATE_DIR FIRST_VERSION CRASH_AT`` loads the store, then sets
the weights of layer ``w`` of graph ``crash`` to version ``FIRST_VERSION``, the next one, ...
printing each version once its commit returned. At the ``CRASH_AT``-th ``os.fsync`` the
process ends at once (``os._exit``): the files written so far are on disk, the rest never
will be, as after a power cut at that instant on a file system that keeps write order.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from service.config import Settings
from service.core.dataplane import DataPlane
from service.runtime.executor import Executor
from service.runtime.providers import select_providers
from service.runtime.sessions import SessionCache
from service.store.filesystem import FilesystemStore

__all__ = ["version_arrays"]

SHAPES = {"kernel": (6, 5), "bias": (5,)}


def version_arrays(version: int) -> list[np.ndarray]:
    """Version ``v``: the kernel all ``v``, the bias all ``-v`` (a mix is visible)."""
    return [np.full(SHAPES["kernel"], version, np.float32), np.full(SHAPES["bias"], -version, np.float32)]


def _crash_at(n: int) -> None:
    real, count = os.fsync, [0]

    def fsync(fd: int) -> None:
        count[0] += 1
        if count[0] >= n:
            os._exit(137)
        real(fd)

    os.fsync = fsync


def main(state_dir: str, first: int, crash_at: int) -> None:
    settings = Settings(state_dir=state_dir)
    plane = DataPlane(settings, FilesystemStore(state_dir), Executor(SessionCache(select_providers(["cpu"]))))
    if "crash" not in plane.graphs:
        plane.create_layer("crash", "Dense", {"units": SHAPES["bias"][0]}, name="w")
        plane.build("crash", "w", [None, SHAPES["kernel"][0]])
        plane.set_weights("crash", "w", version_arrays(0))
    _crash_at(crash_at)
    version = first
    while True:
        plane.set_weights("crash", "w", version_arrays(version))
        print(version, flush=True)
        version += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
