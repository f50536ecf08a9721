"""A graph's journal: its commits since its last snapshot, one appended record each.

A record is framed so that a load can tell a whole record from one a crash cut short::

    magic "LSJ1" | header length (u32) | payload length (u64) | CRC-32 of header and payload (u32)
    header (JSON: what the commit changed) | payload (the new variable values, raw, back to back)

The values are written from the arrays' own buffers (no copy), and the CRC covers them, so a
record is either read whole or not at all: the first record that does not check ends the
journal (a crash during its append; it was never acknowledged).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Record", "append", "array_view", "mapped", "read_array", "records", "truncate", "write_at"]

_MAGIC = b"LSJ1"
_PREFIX = struct.Struct("<4sIQI")

Buffer = bytes | memoryview


@dataclass(frozen=True)
class Record:
    header: dict[str, Any]
    payload: int  # the offset of its payload in the journal
    end: int  # the offset just after it


def array_view(value: np.ndarray) -> memoryview:
    """The array's bytes, C order, flat (a view where the array allows)."""
    return np.require(value, requirements="C").reshape(-1).view(np.uint8).data


def read_array(data: memoryview | bytes, offset: int, length: int, dtype: str, shape: Sequence[int]) -> np.ndarray:
    """A copy of the array stored raw at ``data[offset:offset + length]``."""
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if length != expected or offset + length > len(data):
        raise ValueError(f"the {dtype} array of shape {list(shape)} at byte {offset} is cut short or the wrong size")
    return np.frombuffer(data, dtype=np.dtype(dtype), count=expected // np.dtype(dtype).itemsize,
                         offset=offset).reshape(tuple(shape)).copy()


def write_at(path: Path, offset: int, parts: Sequence[Buffer], *, sync: bool) -> int:
    """Write ``parts`` at ``offset`` of ``path`` (created if missing); the end it reached."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return offset


def append(path: Path, end: int, header: bytes, payload: Sequence[Buffer], *, sync: bool) -> int:
    """Append one record at ``end`` (the journal's committed end: whatever a failed append left
    after it is overwritten); its new end. With ``sync`` it is on disk when this returns."""
    crc, size = zlib.crc32(header), 0
    for part in payload:
        crc = zlib.crc32(part, crc)
        size += memoryview(part).nbytes
    prefix = _PREFIX.pack(_MAGIC, len(header), size, crc)
    return write_at(path, end, [prefix, header, *payload], sync=sync)


def records(data: memoryview | bytes) -> Iterator[Record]:
    """The whole records of ``data``, in order, up to a torn last one: a record cut short by the
    file's end, or bytes that are all zeros to the end (a size the file system kept without its
    data). Anything else that does not check is damage (``ValueError``): a torn append is always
    the last thing in a journal, since a failed one is cut off or its journal replaced."""
    offset = 0
    while offset < len(data):
        start = offset + _PREFIX.size
        if start > len(data):
            head = bytes(data[offset:offset + len(_MAGIC)])
            return _torn(data, offset, cut=head == _MAGIC[:len(head)])
        magic, header_len, payload_len, crc = _PREFIX.unpack_from(data, offset)
        end = start + header_len + payload_len
        if magic != _MAGIC or end > len(data):
            return _torn(data, offset, cut=magic == _MAGIC)
        header = data[start:start + header_len]
        if zlib.crc32(data[start + header_len:end], zlib.crc32(header)) != crc:
            return _torn(data, offset, cut=end == len(data))
        yield Record(json.loads(bytes(header)), start + header_len, end)
        offset = end


def _torn(data: memoryview | bytes, offset: int, *, cut: bool) -> None:
    """Accept the bytes from ``offset`` on as a torn last record, or raise."""
    if not cut and any(bytes(data[offset:])):
        raise ValueError(f"the record at byte {offset} is damaged (it does not check, and is not the last)")


def mapped(path: Path) -> memoryview:
    """The file's bytes (mapped, not read into memory); empty for an empty or missing file."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    except FileNotFoundError:
        return memoryview(b"")


def truncate(path: Path, end: int) -> None:
    """Cut the journal back to ``end`` (a torn last record), durably."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)
