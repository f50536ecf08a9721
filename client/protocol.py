"""The wire format shared by the client and the server (numpy only).

One implementation of the tensor encodings and of the input reference digest, so that
both sides compute exactly the same bytes and the same references.

Binary frame (content type ``application/x-layerserve-frame``)::

    b"LSF1" | uint32 LE header length | header (JSON, UTF-8) | tensor payloads

The header is a JSON object; its ``"tensors"`` entry lists ``{"dtype", "shape"}`` for each
payload, in order. Payloads are raw little-endian, C-ordered bytes, concatenated: a frame is
the tensors' bytes plus 8 bytes and a short header (under 256 bytes for one tensor). Writers
pad the header with spaces (JSON whitespace) so that the payloads start at a multiple of 8
bytes: a reader's zero-copy views are then aligned; readers accept any header length.

JSON bodies go through orjson where it is installed (the server always has it): it writes
numpy arrays natively, each float with the shortest text that reads back to the same bits
(float32 as float32, not widened to float64), so both encodings give bit-identical tensors.
JSON has no literal for NaN or infinities: in a JSON tensor's ``data`` they are the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (as in the protobuf JSON mapping).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from types import ModuleType
from typing import Any

import numpy as np

_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # the client-only install: httpx and numpy
    _orjson = None

__all__ = [
    "FRAME_CONTENT_TYPE",
    "FRAME_MAGIC",
    "FLOAT_DTYPES",
    "WIRE_DTYPES",
    "FrameError",
    "decode_frame",
    "encode_frame",
    "frame_header_length",
    "input_ref",
    "json_array",
    "json_dumps",
    "json_loads",
    "json_number",
    "json_values",
    "tensor_from_json",
    "tensor_to_json",
]

FRAME_CONTENT_TYPE = "application/x-layerserve-frame"
FRAME_MAGIC = b"LSF1"
FLOAT_DTYPES = ("float16", "float32", "float64")
# dtypes a tensor may carry on the wire; layers decide which of them they accept.
WIRE_DTYPES = (*FLOAT_DTYPES, "int8", "int16", "int32", "int64", "uint8", "bool")
_HEADER = struct.Struct("<4sI")
MAX_RANK = 32  # numpy's limit
MAX_DIM = 2**31 - 1


class FrameError(ValueError):
    """A tensor or frame whose bytes do not match what it declares."""


_LE_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}
_NAMES: dict[np.dtype[Any], str] = {}
_ALIGN = 8


def _wire_dtype(name: object) -> np.dtype[Any]:
    dtype = _LE_DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise FrameError(f"unsupported dtype {name!r}; expected one of {', '.join(WIRE_DTYPES)}")
    return dtype


def _shape(value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in value
    ):
        raise FrameError(f"shape must be a list of at most {MAX_RANK} integers in [0, {MAX_DIM}], "
                         f"got {str(value)[:200]}")
    return tuple(value)


def json_number(value: float) -> float | str:
    """A float for JSON: itself, or ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def json_values(array: np.ndarray) -> list[Any]:
    """The flat, row-major values of ``array`` for a JSON tensor's ``data``."""
    flat = np.asarray(array).ravel()
    values: list[Any] = flat.tolist()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        values = [json_number(v) for v in values]
    return values


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_scalar(value: Any) -> Any:
    """A JSON number or boolean as it is; one of the three non-finite spellings as its float."""
    if isinstance(value, str):
        if value not in _NON_FINITE:
            raise FrameError(f"data holds the string {value[:40]!r}; numbers are JSON numbers, and only "
                             '"NaN", "Infinity" and "-Infinity" are written as strings')
        return _NON_FINITE[value]
    if not isinstance(value, (int, float)):  # bool is an int
        raise FrameError(f"data holds {type(value).__name__} values; a tensor holds numbers")
    return value


def json_array(data: list[Any], dtype: np.dtype[Any]) -> np.ndarray:
    """JSON ``data`` (flat or nested lists) as an array of ``dtype``, strictly: numbers and
    booleans only, non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"`` and nothing
    else as a string, and no value that ``dtype`` cannot hold (1e39 is not a float32, 1.5 and
    300 are not an int8). Strings are looked at only when there are some (the slow path)."""
    try:
        probe = np.array(data)
        if probe.dtype.kind in "OSU":
            if dtype.kind != "f":
                raise FrameError(f"data of a {dtype.name} tensor holds values that are not numbers")
            probe = np.array(_map_nested(data), dtype=np.float64)
        if probe.dtype.kind not in "biuf":
            raise FrameError(f"data holds values that are not {dtype.name}")
        array = probe.astype(dtype.newbyteorder("="))
    except (TypeError, ValueError, OverflowError) as exc:
        raise FrameError(f"data holds values that are not {dtype.name}: {exc}") from None
    _check_representable(probe, array)
    return array


def _map_nested(data: Any) -> Any:
    return [_map_nested(v) for v in data] if isinstance(data, list) else _json_scalar(data)


def _check_representable(probe: np.ndarray, array: np.ndarray) -> None:
    """Refuse values that changed in the cast (beyond a float's rounding)."""
    if array.dtype.kind == "f":
        if probe.dtype.kind == "f" and not np.array_equal(np.isfinite(probe), np.isfinite(array)):
            raise FrameError(f"data holds values out of the range of {array.dtype.name}")
        if probe.dtype.kind in "iu" and not np.isfinite(array).all():
            raise FrameError(f"data holds values out of the range of {array.dtype.name}")
    elif array.dtype.kind != "b" and probe.dtype.kind != "b" and not np.array_equal(array, probe):
        raise FrameError(f"data holds values that are not {array.dtype.name} (out of range or not integral)")


def _element_count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _dtype_name(dtype: np.dtype[Any]) -> str:
    """``dtype.name``, remembered (numpy computes it in Python, 1-2 us a call)."""
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name
    return name


def _le_array(array: np.ndarray) -> np.ndarray:
    """C-ordered and little-endian: the array itself when it already is (no copy)."""
    contiguous = np.asarray(array, order="C")
    if contiguous.dtype.byteorder == ">":
        contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
    return contiguous


def _le_bytes(array: np.ndarray) -> bytes:
    return _le_array(array).tobytes()


def input_ref(array: np.ndarray) -> str:
    """The content digest that identifies an input: sha256 over dtype, shape and bytes."""
    array = np.asarray(array)
    head = f"{array.dtype.name}:{','.join(str(d) for d in array.shape)}:".encode()
    return "sha256:" + hashlib.sha256(head + _le_bytes(array)).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_dumps(obj: Any) -> bytes:
    """JSON bytes; numpy arrays and scalars allowed anywhere in ``obj``."""
    if _orjson is not None:
        return _orjson.dumps(obj, option=_orjson.OPT_SERIALIZE_NUMPY)  # type: ignore[no-any-return]
    return json.dumps(obj, default=_plain, separators=(",", ":")).encode()


def json_loads(data: bytes) -> Any:
    return json.loads(data) if _orjson is None else _orjson.loads(data)


def tensor_to_json(array: np.ndarray) -> dict[str, Any]:
    """A JSON tensor whose ``data`` is a flat native-order array (for ``json_dumps``)."""
    array = np.asarray(array)
    flat = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False)).ravel()
    finite = flat.dtype.kind != "f" or bool(np.isfinite(flat).all())
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": flat if finite else json_values(flat)}


def tensor_from_json(obj: object, max_elements: int | None = None) -> np.ndarray:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise FrameError('a JSON tensor is {"dtype": ..., "shape": [...], "data": [...]}')
    dtype = _wire_dtype(obj["dtype"])
    shape = _shape(obj["shape"])
    count = _element_count(shape)
    if max_elements is not None and count > max_elements:
        raise FrameError(f"tensor has {count} elements, more than the limit of {max_elements}")
    data = obj["data"]
    if not isinstance(data, list) or len(data) != count:
        raise FrameError(f"data must be a flat list of {count} numbers for shape {list(shape)}")
    array = json_array(data, dtype)
    if array.ndim != 1:
        raise FrameError("data must be a flat list of numbers")
    return array.reshape(shape)


def _compact_json(obj: Any) -> bytes:
    if _orjson is not None:
        try:
            return _orjson.dumps(obj)  # type: ignore[no-any-return]
        except TypeError:
            pass  # what orjson refuses (keys that are not strings), the standard encoder writes
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_frame(header: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    payloads = [_le_array(a) for a in arrays]
    meta = dict(header)
    meta["tensors"] = [{"dtype": _dtype_name(a.dtype), "shape": list(a.shape)} for a in payloads]
    head = _compact_json(meta)
    head += b" " * (-(_HEADER.size + len(head)) % _ALIGN)  # payloads start aligned
    # The arrays go into the join as buffers: their bytes are copied once, into the frame.
    return b"".join([_HEADER.pack(FRAME_MAGIC, len(head)), head, *(a.data for a in payloads)])


def _frame_header(body: bytes) -> tuple[dict[str, Any], int]:
    if len(body) < _HEADER.size:
        raise FrameError("frame is shorter than its fixed header")
    magic, head_len = _HEADER.unpack_from(body)
    if magic != FRAME_MAGIC:
        raise FrameError("frame does not start with the LSF1 magic bytes")
    end = _HEADER.size + head_len
    if end > len(body):
        raise FrameError("frame header length runs past the end of the body")
    header = _header_json(body[_HEADER.size : end])
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise FrameError('frame header must be a JSON object with a "tensors" list')
    return header, end


def _header_json(raw: bytes) -> Any:
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # the standard parser decides, and words the error
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FrameError(f"frame header is not JSON: {exc}") from None


def frame_header_length(body: bytes) -> int:
    """The length of a frame's JSON header, read from its fixed header (0 when too short)."""
    return int(_HEADER.unpack_from(body)[1]) if len(body) >= _HEADER.size else 0


def decode_frame(body: bytes, max_elements: int | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Split a frame into its header and zero-copy array views of the payloads."""
    header, offset = _frame_header(body)
    arrays = []
    for spec in header.pop("tensors"):
        if not isinstance(spec, dict):
            raise FrameError("each tensor entry is {\"dtype\", \"shape\"}")
        dtype, shape = _wire_dtype(spec.get("dtype")), _shape(spec.get("shape"))
        count = _element_count(shape)
        if max_elements is not None and count > max_elements:
            raise FrameError(f"tensor has {count} elements, more than the limit of {max_elements}")
        size = count * dtype.itemsize
        if offset + size > len(body):
            raise FrameError(f"tensor of shape {list(shape)} needs {size} bytes; the frame is short")
        arrays.append(np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape))
        offset += size
    if offset != len(body):
        raise FrameError(f"frame has {len(body) - offset} bytes after its last tensor")
    return header, arrays
