"""A process that writes versions into a state directory until it dies at a chosen fsync.

``python -m tests.store_writer STATE_DIR FIRST_VERSION CRASH_AT`` loads the store, then sets
the weights of layer ``w`` of graph ``crash`` to version ``FIRST_VERSION``, the next one, ...
printing each version once its commit returned. At the ``CRASH_AT``-th ``os.fsync`` the
process ends at once (``os._exit``): the files written so far are on disk, the rest never
will be, as after a power cut at that instant on a file system that keeps write order.

The weights are committed with a snapshot every ``SNAPSHOT_EVERY`` commits.

With a fourth argument ``records``, version ``v`` is instead an apply of layer ``counting`` of
graph ``records`` to ``record_input(v)``, which records the loss ``6 v`` (at most
``RECORDS_CAP`` records are kept).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from layerserve.server.config import Settings
from layerserve.server.plane import DataPlane
from layerserve.server.runtime.executor import Executor
from layerserve.server.runtime.providers import select_providers
from layerserve.server.runtime.sessions import SessionCache
from layerserve.server.store.filesystem import FilesystemStore

__all__ = ["RECORDS_CAP", "record_input", "records_plane", "version_arrays"]

SHAPES = {"kernel": (6, 5), "bias": (5,)}
RECORDS_CAP = 100
SNAPSHOT_EVERY = 4  # commits: the crashes hit snapshots as well as journal appends


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


def record_input(version: int) -> np.ndarray:
    return np.full((1, 6), version, np.float32)


def records_plane(state_dir: str) -> DataPlane:
    """A data plane on the state directory with graph ``records``: Dense(1), kernel ones, an l1
    activity regularizer of 1 (so the input ``record_input(v)`` records the loss 6 v)."""
    settings = Settings(state_dir=state_dir, max_records_per_layer=RECORDS_CAP)
    plane = DataPlane(settings, FilesystemStore(state_dir), Executor(SessionCache(select_providers(["cpu"]))))
    if "records" not in plane.graphs:
        plane.create_layer("records", "Dense", {"units": 1, "activity_regularizer": {"l1": 1.0}}, name="counting")
        plane.build("records", "counting", [None, 6])
        plane.set_weights("records", "counting", [np.ones((6, 1), np.float32), np.zeros(1, np.float32)])
    return plane


def _write_records(plane: DataPlane, first: int) -> None:
    version = first
    while True:
        plane.apply("records", "counting", [record_input(version)])
        print(version, flush=True)
        version += 1


def main(state_dir: str, first: int, crash_at: int, mode: str = "weights") -> None:
    if mode == "records":
        plane = records_plane(state_dir)
        _crash_at(crash_at)
        _write_records(plane, first)
        return
    settings = Settings(state_dir=state_dir)
    store = FilesystemStore(state_dir, snapshot_every=SNAPSHOT_EVERY)
    plane = DataPlane(settings, store, Executor(SessionCache(select_providers(["cpu"]))))
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
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:])
