"""Writes that survive a crash: file contents and directory entries fsynced before returning."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "fsync_write"]


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the caller renames or fsyncs the directory)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
