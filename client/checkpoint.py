"""TensorFlow's checkpoint format (the tensor bundle), read and written without TensorFlow.

A checkpoint ``prefix`` is two files:

* ``prefix.index``: a LevelDB-format table (blocks of prefix-compressed key/value entries, each
  block followed by its compression type and masked crc32c, then a meta-index block, an index
  block and a 48-byte footer ending in the table's magic number). Key ``""`` holds a
  ``BundleHeaderProto``; every other key is a tensor's name (``dense/kernel``, no ``:0``) and
  holds its ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked crc32c of its bytes).
* ``prefix.data-00000-of-00001``: the tensors' raw little-endian bytes, one after the other.

The two protocol buffer messages are small and fixed, so they are encoded here by hand: the
client then needs no protobuf runtime, and what we write is byte for byte what TensorFlow's
``BundleWriter`` writes for the same tensors. crc32c comes from ``google-crc32c`` when it is
installed (the server's extra has it) and from a table-driven fallback otherwise.

Everything read is checked before anything is allocated: a tensor's bytes must lie inside the
data given, so a hostile index cannot make the reader allocate more than the files hold.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BundleEntry",
    "CheckpointFormatError",
    "DATA_SUFFIX",
    "INDEX_SUFFIX",
    "crc32c",
    "decode_bundle",
    "encode_bundle",
    "encode_index",
    "list_checkpoint",
    "masked_crc32c",
    "read_checkpoint",
    "read_index",
    "write_checkpoint",
]

INDEX_SUFFIX = ".index"
DATA_SUFFIX = ".data-00000-of-00001"

# TensorFlow's DataType enum values for the dtypes a layer's variables can have.
_DTYPE_CODES = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "int64": 9,
                "bool": 10, "uint16": 17, "float16": 19, "uint32": 22, "uint64": 23}
_CODE_DTYPES = {code: name for name, code in _DTYPE_CODES.items()}
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_BLOCK_TRAILER = 5  # compression type byte + masked crc32c
_BLOCK_SIZE = 262144  # TensorFlow's table::Options defaults
_RESTART_INTERVAL = 16
_MASK_DELTA = 0xA282EAD8
_BUNDLE_VERSION = 1  # kTensorBundleVersion


class CheckpointFormatError(ValueError):
    """The files are not a checkpoint this reader accepts (TensorFlow says DataLossError)."""


# ---- crc32c ----------------------------------------------------------------------------
def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _make_table()


def _crc32c_python(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``."""
    try:
        import google_crc32c
    except ImportError:  # the base client install: slower, same result
        return _crc32c_python(bytes(data), crc)
    return int(google_crc32c.extend(crc, bytes(data)))


def masked_crc32c(data: bytes | memoryview) -> int:
    """The crc as TensorFlow stores it: rotated and offset, so that a crc of data holding crcs
    is not degenerate (``crc32c::Mask``)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---- varints and protocol buffer fields --------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 as protobuf writes it
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CheckpointFormatError(f"truncated or malformed varint in {what}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _fields(data: bytes, what: str) -> Iterable[tuple[int, int | bytes]]:
    """(field number, value) of a message: varints as ints, length-delimited and fixed as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos, what)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos, what)
            yield number, value
            continue
        if wire == 2:
            length, pos = _read_varint(data, pos, what)
        elif wire in (1, 5):
            length = 8 if wire == 1 else 4
        else:
            raise CheckpointFormatError(f"unsupported protocol buffer wire type {wire} in {what}")
        if pos + length > len(data):
            raise CheckpointFormatError(f"truncated field {number} in {what}")
        yield number, data[pos:pos + length]
        pos += length


# ---- entries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lies in the data file, and what it is."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    crc32c: int  # masked, as stored

    def encode(self) -> bytes:
        dims = b"".join(_field(2, _field(1, d) if d else b"") for d in self.shape)
        out = _field(1, _DTYPE_CODES[self.dtype]) + _field(2, dims)
        if self.offset:
            out += _field(4, self.offset)
        if self.size:
            out += _field(5, self.size)
        if self.crc32c:
            out += _varint(6 << 3 | 5) + struct.pack("<I", self.crc32c)
        return out


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_shape(data: bytes, name: str) -> tuple[int, ...]:
    dims = []
    for number, value in _fields(data, f"the shape of {name!r}"):
        if number == 3 and value:
            raise CheckpointFormatError(f"tensor {name!r} has an unknown rank")
        if number == 2 and isinstance(value, bytes):
            size = 0
            for sub, dim in _fields(value, f"the shape of {name!r}"):
                if sub == 1 and isinstance(dim, int):
                    size = _signed64(dim)
            if size < 0:
                raise CheckpointFormatError(f"tensor {name!r} has a negative dimension {size}")
            dims.append(size)
    return tuple(dims)


def _decode_entry(name: str, data: bytes) -> BundleEntry:
    shape: tuple[int, ...] = ()
    dtype_code, shard, offset, size, crc = 0, 0, 0, 0, 0
    for number, value in _fields(data, f"the entry of {name!r}"):
        if number == 1 and isinstance(value, int):
            dtype_code = value
        elif number == 2 and isinstance(value, bytes):
            shape = _decode_shape(value, name)
        elif number == 3 and isinstance(value, int):
            shard = value
        elif number == 4 and isinstance(value, int):
            offset = _signed64(value)
        elif number == 5 and isinstance(value, int):
            size = _signed64(value)
        elif number == 6 and isinstance(value, bytes):
            crc = struct.unpack("<I", value)[0]
        elif number == 7:
            raise CheckpointFormatError(f"tensor {name!r} is saved in slices (a partitioned variable): "
                                        "not supported")
    if dtype_code not in _CODE_DTYPES:
        raise CheckpointFormatError(f"tensor {name!r} has an unsupported dtype (TensorFlow DataType {dtype_code})")
    if shard != 0:
        raise CheckpointFormatError(f"tensor {name!r} is in data shard {shard}; only single-shard checkpoints "
                                    "are supported")
    if offset < 0 or size < 0:
        raise CheckpointFormatError(f"tensor {name!r} has a negative offset or size")
    return BundleEntry(name, _CODE_DTYPES[dtype_code], shape, offset, size, crc)


# ---- the table (SSTable) -----------------------------------------------------------------
class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        self.buffer += key[shared:] + value
        self.last = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack("<I", len(self.restarts))
        return bytes(self.buffer) + tail


def _separator(start: bytes, limit: bytes) -> bytes:
    """A short key >= ``start`` and < ``limit`` (the table's FindShortestSeparator)."""
    n = 0
    while n < min(len(start), len(limit)) and start[n] == limit[n]:
        n += 1
    if n < min(len(start), len(limit)) and start[n] < 0xFF and start[n] + 1 < limit[n]:
        return start[:n] + bytes([start[n] + 1])
    return start


def _successor(key: bytes) -> bytes:
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


class _TableWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.block = _BlockBuilder(_RESTART_INTERVAL)
        self.index = _BlockBuilder(1)
        self.last = b""
        self.pending: bytes | None = None  # the handle of the last block written, not yet indexed
        self.entries = 0

    def _write_block(self, contents: bytes) -> bytes:
        handle = _varint(len(self.out)) + _varint(len(contents))
        crc = crc32c(b"\x00", crc32c(contents))
        masked = (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
        self.out += contents + b"\x00" + struct.pack("<I", masked)
        return handle

    def _flush(self) -> None:
        if self.block.buffer:
            self.pending = self._write_block(self.block.finish())
            self.block = _BlockBuilder(_RESTART_INTERVAL)

    def add(self, key: bytes, value: bytes) -> None:
        if self.entries and len(key) + len(value) >= 2 * _BLOCK_SIZE:
            self._flush()
        if self.pending is not None:
            self.index.add(_separator(self.last, key), self.pending)
            self.pending = None
        self.last = key
        self.entries += 1
        self.block.add(key, value)
        if self.block.size_estimate() >= _BLOCK_SIZE:
            self._flush()

    def finish(self) -> bytes:
        self._flush()
        meta = self._write_block(_BlockBuilder(_RESTART_INTERVAL).finish())
        if self.pending is not None:
            self.index.add(_successor(self.last), self.pending)
        index = self._write_block(self.index.finish())
        footer = (meta + index).ljust(40, b"\x00") + struct.pack("<II", _TABLE_MAGIC & 0xFFFFFFFF, _TABLE_MAGIC >> 32)
        return bytes(self.out + footer)


def _read_handle(data: bytes, pos: int, what: str) -> tuple[int, int, int]:
    offset, pos = _read_varint(data, pos, what)
    size, pos = _read_varint(data, pos, what)
    return offset, size, pos


def _read_block(table: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size
    if end + _BLOCK_TRAILER > len(table) - _FOOTER_BYTES:
        raise CheckpointFormatError(f"truncated index file: {what} runs past its end")
    contents = table[offset:end]
    kind = table[end]
    stored = struct.unpack_from("<I", table, end + 1)[0]
    if crc32c(table[offset:end + 1]) != _unmask(stored):
        raise CheckpointFormatError(f"index file checksum mismatch in {what}")
    if kind != 0:
        raise CheckpointFormatError(f"{what} is compressed (type {kind}); only uncompressed tables are supported")
    return contents


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointFormatError(f"malformed {what}")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if restarts < 1 or end < 0:
        raise CheckpointFormatError(f"malformed {what}: bad restart array")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _read_varint(block, pos, what)
        unshared, pos = _read_varint(block, pos, what)
        length, pos = _read_varint(block, pos, what)
        if shared > len(key) or pos + unshared + length > end:
            raise CheckpointFormatError(f"malformed entry in {what}")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def _table_entries(table: bytes) -> list[tuple[bytes, bytes]]:
    if len(table) < _FOOTER_BYTES:
        raise CheckpointFormatError(f"truncated index file: {len(table)} bytes, shorter than a table's footer")
    footer = table[-_FOOTER_BYTES:]
    lo, hi = struct.unpack_from("<II", footer, 40)
    if (hi << 32 | lo) != _TABLE_MAGIC:
        raise CheckpointFormatError("not a checkpoint index (bad table magic number)")
    _, _, pos = _read_handle(footer, 0, "the footer")
    index_offset, index_size, _ = _read_handle(footer, pos, "the footer")
    entries = []
    for _, handle in _block_entries(_read_block(table, index_offset, index_size, "the index block"), "the index block"):
        offset, size, _ = _read_handle(handle, 0, "a block handle")
        entries += _block_entries(_read_block(table, offset, size, "a data block"), "a data block")
    return entries


# ---- bundles -------------------------------------------------------------------------------
def _header() -> bytes:
    version = _field(1, _BUNDLE_VERSION)
    return _field(1, 1) + _field(3, version)  # num_shards 1; endianness LITTLE (0) is the default


def _check_header(value: bytes) -> None:
    shards, endianness = 0, 0
    for number, field in _fields(value, "the bundle header"):
        if number == 1 and isinstance(field, int):
            shards = field
        elif number == 2 and isinstance(field, int):
            endianness = field
    if shards != 1:
        raise CheckpointFormatError(f"the checkpoint has {shards} data shards; only single-shard checkpoints "
                                    "are supported")
    if endianness != 0:
        raise CheckpointFormatError("the checkpoint was written big-endian: not supported")


def _little_endian(value: np.ndarray) -> np.ndarray:
    array = np.asarray(value, order="C")  # keeps a scalar 0-d (ascontiguousarray makes it 1-d)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def encode_bundle(tensors: Mapping[str, np.ndarray]) -> tuple[bytes, bytes]:
    """``(index, data)`` of a checkpoint holding ``tensors`` (name without ``:0`` -> array)."""
    data = bytearray()
    entries = []
    for name in sorted(tensors, key=lambda n: n.encode()):
        array = _little_endian(np.asarray(tensors[name]))
        if array.dtype.name not in _DTYPE_CODES:
            raise CheckpointFormatError(f"tensor {name!r} has dtype {array.dtype.name}, which checkpoints here "
                                        f"do not hold (one of {', '.join(sorted(_DTYPE_CODES))})")
        if not name:
            raise CheckpointFormatError("a tensor name may not be empty (the key of the bundle header)")
        raw = array.tobytes()
        entries.append(BundleEntry(name, array.dtype.name, tuple(array.shape), len(data), len(raw),
                                   masked_crc32c(raw)))
        data += raw
    return encode_index(entries), bytes(data)


def encode_index(entries: Iterable[BundleEntry]) -> bytes:
    """The index file of these entries (any order: the table is sorted by name)."""
    table = _TableWriter()
    table.add(b"", _header())
    for entry in sorted(entries, key=lambda e: e.name.encode()):
        table.add(entry.name.encode(), entry.encode())
    return table.finish()


def read_index(index: bytes) -> dict[str, BundleEntry]:
    """The entries of an index file, by tensor name (the header checked and left out)."""
    entries: dict[str, BundleEntry] = {}
    header = False
    for key, value in _table_entries(index):
        if not key:
            _check_header(value)
            header = True
            continue
        try:
            name = key.decode()
        except UnicodeDecodeError:
            raise CheckpointFormatError(f"a tensor name is not UTF-8: {key[:64]!r}") from None
        entries[name] = _decode_entry(name, value)
    if not header:
        raise CheckpointFormatError("the index has no bundle header")
    return entries


def _element_count(entry: BundleEntry) -> int:
    count = 1
    for dim in entry.shape:
        count *= dim
    return count


def _tensor(entry: BundleEntry, data: bytes | memoryview) -> np.ndarray:
    dtype = np.dtype(entry.dtype).newbyteorder("<")
    if _element_count(entry) * dtype.itemsize != entry.size:
        raise CheckpointFormatError(f"tensor {entry.name!r} of shape {list(entry.shape)} and dtype {entry.dtype} "
                                    f"cannot take {entry.size} bytes")
    if entry.offset + entry.size > len(data):
        raise CheckpointFormatError(f"truncated data file: tensor {entry.name!r} ends at byte "
                                    f"{entry.offset + entry.size}, the file has {len(data)}")
    raw = data[entry.offset:entry.offset + entry.size]
    if masked_crc32c(raw) != entry.crc32c:
        raise CheckpointFormatError(f"checksum mismatch for tensor {entry.name!r}: the data file is corrupt")
    return np.frombuffer(bytes(raw), dtype=dtype).astype(np.dtype(entry.dtype)).reshape(entry.shape)


def decode_bundle(index: bytes, data: bytes | memoryview, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of a checkpoint (all, or those ``names``), each checked against its crc."""
    entries = read_index(index)
    wanted = list(entries) if names is None else list(names)
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise KeyError(missing[0])
    return {name: _tensor(entries[name], data) for name in wanted}


def write_checkpoint(prefix: str | os.PathLike[str], tensors: Mapping[str, np.ndarray]) -> None:
    """Write ``prefix.index`` and ``prefix.data-00000-of-00001``; each file appears whole
    (written beside it, then renamed), the data file first, as TensorFlow orders them."""
    index, data = encode_bundle(tensors)
    for path, content in ((str(prefix) + DATA_SUFFIX, data), (str(prefix) + INDEX_SUFFIX, index)):
        tmp = Path(path + ".tempstate")
        tmp.write_bytes(content)
        os.replace(tmp, path)


def read_checkpoint(prefix: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at ``prefix``."""
    return decode_bundle(Path(str(prefix) + INDEX_SUFFIX).read_bytes(), Path(str(prefix) + DATA_SUFFIX).read_bytes())


def list_checkpoint(prefix: str | os.PathLike[str]) -> list[tuple[str, list[int]]]:
    """``(name, shape)`` of every tensor, sorted by name (TensorFlow's ``list_variables``)."""
    entries = read_index(Path(str(prefix) + INDEX_SUFFIX).read_bytes())
    return [(name, list(entries[name].shape)) for name in sorted(entries)]
