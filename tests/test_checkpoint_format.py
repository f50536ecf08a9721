"""TensorFlow's checkpoint format (``layerserve.checkpoint``): what TensorFlow wrote is read
exactly, what we write is TensorFlow's bytes, and hostile files give a clear error."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from layerserve import checkpoint
from layerserve.checkpoint import BundleEntry, CheckpointFormatError

DATA = Path(__file__).parent / "data" / "checkpoints"
TF_PREFIX = DATA / "mlp_adam-3"


def _tf_values() -> dict[str, np.ndarray]:
    recorded = np.load(DATA / "mlp_adam.npz")
    return {key[4:]: recorded[key] for key in recorded.files if key.startswith("var:")}


def _files(prefix: Path) -> tuple[bytes, bytes]:
    return (Path(str(prefix) + checkpoint.INDEX_SUFFIX).read_bytes(),
            Path(str(prefix) + checkpoint.DATA_SUFFIX).read_bytes())


def test_reads_what_tensorflow_wrote() -> None:
    read = checkpoint.read_checkpoint(TF_PREFIX)
    expected = _tf_values()
    assert sorted(read) == sorted(expected)
    for name, value in expected.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape, name
        np.testing.assert_array_equal(read[name], value)
    assert read["global_step"].dtype == np.int64 and int(read["global_step"]) == 3
    assert {read[n].dtype.name for n in ("extra/half", "extra/double", "extra/count")} == {"float16", "float64",
                                                                                         "int32"}


def test_writes_tensorflows_bytes() -> None:
    """The same tensors give TensorFlow's own index and data files, byte for byte."""
    index, data = checkpoint.encode_bundle(_tf_values())
    assert (index, data) == _files(TF_PREFIX)


def test_list_checkpoint_sorted_with_shapes() -> None:
    listed = dict(checkpoint.list_checkpoint(TF_PREFIX))
    assert listed["fc/kernel"] == [3, 4] and listed["global_step"] == [] and listed["extra/empty"] == [0, 3]


def test_round_trip_through_files(tmp_path: Path) -> None:
    tensors = {"a/k": np.arange(12, dtype=np.float32).reshape(3, 4), "s": np.int64(9),
               "b": np.array([True, False]), "big_endian": np.arange(3, dtype=">f8")}
    checkpoint.write_checkpoint(tmp_path / "m-1", tensors)
    read = checkpoint.read_checkpoint(tmp_path / "m-1")
    assert read["s"].shape == () and read["s"].dtype == np.int64
    assert read["big_endian"].dtype == np.float64
    for name, value in tensors.items():
        np.testing.assert_array_equal(read[name], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.data-00000-of-00001", "m-1.index"]


def test_many_tensors_span_several_blocks() -> None:
    """An index larger than one 256 KiB block: several data blocks, found through the index block."""
    tensors = {f"scope_{i:05d}/" + "w" * 120: np.full((2,), i, np.float32) for i in range(2500)}
    index, data = checkpoint.encode_bundle(tensors)
    assert len(index) > 262144
    read = checkpoint.decode_bundle(index, data)
    assert len(read) == 2500 and float(read[f"scope_02499/{'w' * 120}"][0]) == 2499


def test_table_structure_by_the_format_rules() -> None:
    """Footer: two varint block handles padded to 40 bytes, then the magic; each block ends in
    its type byte and the masked crc32c of block + type."""
    index, _ = checkpoint.encode_bundle({"v": np.ones(3, np.float32)})
    footer = index[-48:]
    assert struct.unpack("<Q", footer[40:])[0] == 0xDB4775248B80FB57
    offset, size = footer[2], footer[3]  # the index handle follows the meta-index handle (2 bytes)
    block = index[offset:offset + size + 1]
    stored = struct.unpack("<I", index[offset + size + 1:offset + size + 5])[0]
    assert stored == checkpoint.masked_crc32c(block)
    assert checkpoint.crc32c(b"123456789") == 0xE3069283


def test_pure_python_crc_matches_library() -> None:
    from layerserve.checkpoint import _crc32c_python

    data = os.urandom(4096)
    assert _crc32c_python(data) == checkpoint.crc32c(data)


# ---- hostile files ---------------------------------------------------------------------
@pytest.mark.parametrize("cut", [0, 10, 47, 48, 100, -1, -10, -48])
def test_truncated_index(cut: int) -> None:
    index, data = _files(TF_PREFIX)
    with pytest.raises(CheckpointFormatError):
        checkpoint.decode_bundle(index[:cut], data)


def _varints(data: bytes, count: int) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
            if len(values) == count:
                break
    return values


def test_every_flipped_index_byte_is_caught() -> None:
    """Every byte of the data blocks and the index block is covered by a crc (the empty
    meta-index block and the footer's padding are not read, by TensorFlow either)."""
    index, data = _files(TF_PREFIX)
    meta_offset, meta_size, _, _ = _varints(index[-48:], 4)
    read = [*range(meta_offset), *range(meta_offset + meta_size + 5, len(index) - 48)]
    for position in read:
        broken = bytearray(index)
        broken[position] ^= 0x40
        with pytest.raises(CheckpointFormatError):
            checkpoint.decode_bundle(bytes(broken), data)


def test_wrong_data_crc() -> None:
    index, data = _files(TF_PREFIX)
    broken = bytearray(data)
    broken[5] ^= 1
    with pytest.raises(CheckpointFormatError, match="checksum mismatch for tensor"):
        checkpoint.decode_bundle(index, bytes(broken))


def test_truncated_data() -> None:
    index, data = _files(TF_PREFIX)
    with pytest.raises(CheckpointFormatError, match="truncated data file"):
        checkpoint.decode_bundle(index, data[:-4])


def test_absurd_shape_is_refused_without_allocating() -> None:
    entry = BundleEntry("huge", "float32", (2**40, 2**40), 0, 16, checkpoint.masked_crc32c(bytes(16)))
    with pytest.raises(CheckpointFormatError, match="cannot take 16 bytes"):
        checkpoint.decode_bundle(checkpoint.encode_index([entry]), bytes(16))
    lying = BundleEntry("huge", "float32", (2**20, 2**20), 0, 2**42, 0)
    with pytest.raises(CheckpointFormatError, match="truncated data file"):
        checkpoint.decode_bundle(checkpoint.encode_index([lying]), bytes(16))


def test_bad_names_and_unsupported_entries() -> None:
    table = checkpoint._TableWriter()
    table.add(b"", checkpoint._header())
    table.add(b"\xff\xfe", BundleEntry("v", "float32", (1,), 0, 4, 0).encode())
    with pytest.raises(CheckpointFormatError, match="not UTF-8"):
        checkpoint.read_index(table.finish())
    sliced = BundleEntry("v", "float32", (1,), 0, 4, 0).encode() + b"\x3a\x00"  # field 7: slices
    table = checkpoint._TableWriter()
    table.add(b"", checkpoint._header())
    table.add(b"v", sliced)
    with pytest.raises(CheckpointFormatError, match="partitioned"):
        checkpoint.read_index(table.finish())
    with pytest.raises(CheckpointFormatError, match="not a checkpoint index"):
        checkpoint.read_index(b"\x00" * 100)
    with pytest.raises(CheckpointFormatError, match="dtype"):
        checkpoint.encode_bundle({"s": np.array(["x"])})


def test_missing_tensor_is_a_key_error() -> None:
    index, data = _files(TF_PREFIX)
    with pytest.raises(KeyError):
        checkpoint.decode_bundle(index, data, names=["nope"])


# ---- TensorFlow reads what we write -------------------------------------------------------
def _tensorflow_python() -> str | None:
    """An interpreter with TensorFlow: this one, or the one ``LAYERSERVE_TF_PYTHON`` names."""
    try:
        import tensorflow  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    named = os.environ.get("LAYERSERVE_TF_PYTHON")
    return named if named and shutil.which(named) else None


def test_tensorflow_reads_what_we_write(tmp_path: Path) -> None:
    python = _tensorflow_python()
    if python is None:
        pytest.skip("TensorFlow is not importable here; set LAYERSERVE_TF_PYTHON to a Python that has it")
    tensors = {"net/fc/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "global_step": np.int64(12),
               "h": np.ones((2,), np.float16), "d": np.linspace(0, 1, 4), "n": np.int32(-3)}
    checkpoint.write_checkpoint(tmp_path / "ours-12", tensors)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        r = tf.train.load_checkpoint({str(tmp_path / 'ours-12')!r})
        for name in sorted(r.get_variable_to_shape_map()):
            v = r.get_tensor(name)
            print(name, v.dtype, list(np.shape(v)), np.asarray(v).ravel().tolist())
    """)
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines == [f"{n} {tensors[n].dtype} {list(np.shape(tensors[n]))} {np.asarray(tensors[n]).ravel().tolist()}"
                     for n in sorted(tensors)]
