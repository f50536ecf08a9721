"""Request and response bodies of the native API, and their two encodings.

JSON (``application/json``): tensors are ``{"dtype", "shape", "data"}``. Binary
(``application/x-layerserve-frame``, see ``layerserve.protocol``): the same fields in the frame
header and the tensors as raw payloads. The response uses the encoding the request's
``Accept`` header asks for (JSON by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message

from layerserve.protocol import (
    FRAME_CONTENT_TYPE,
    WIRE_DTYPES,
    FrameError,
    decode_frame,
    encode_frame,
    frame_header_length,
    json_values,
    tensor_from_json,
)
from layerserve.server.config import Settings
from layerserve.server.errors import BadRequest, InvalidArgument, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "LARGE_JSON_BYTES", "LAYER_ID_KEY", "ApplyBody", "BuildBody", "CreateLayerBody", "PatchLayerBody", "RefsBody", "Reply", "ShapeBody", "WeightsBody",
    "body_doc", "declared_too_large", "decode_in_thread", "set_decode_threads", "decode", "decode_body", "json_reply", "json_response", "json_tensor", "read_body", "receive_body",
    "tensor_reply", "tensor_response", "parse_uint", "wants_frame",
]

T = TypeVar("T")
JSON_TYPE = "application/json"
LARGE_JSON_BYTES = 128 * 1024


# Set in the ASGI scope by the routes that resolved a layer: the metrics label it by id.
LAYER_ID_KEY = "layerserve.layer_id"
_MAX_UINT_DIGITS = 18  # below 2**63: every count and version fits, and int() stays cheap


def parse_uint(text: str) -> int | None:
    """A non-negative decimal integer in ASCII digits (``str.isdigit`` also takes "²" and other
    digits ``int`` refuses), at most 18 of them; None for anything else."""
    if not text or len(text) > _MAX_UINT_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def declared_too_large(declared: str | None, limit: int) -> bool:
    """A ``Content-Length`` over ``limit`` (more digits than any count counts too)."""
    if declared is None or not declared.isascii() or not declared.isdigit():
        return False
    return len(declared) > _MAX_UINT_DIGITS or int(declared) > limit


class _Body(BaseModel):
    # strict: "yes" is not a bool and "3" not an int; JSON has the types the fields name.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class CreateLayerBody(_Body):
    class_name: str = Field(alias="class")
    name: str | None = None
    trainable: bool | None = None
    dtype: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    scope: str | None = Field(None, description="functional forms: the exact variable scope (TF's `_scope`)")
    reuse: bool | Literal["auto"] | None = Field(
        None, description="functional forms: share the scope's existing variables (\"auto\": share them when "
                          "they exist, else create them, as tf.compat.v1.AUTO_REUSE)")
    batching: dict[str, Any] | None = Field(None, description="dynamic batching overrides: enabled, "
                                                               "max_batch_size, max_queue_delay_ms")


class PatchLayerBody(_Body):
    trainable: bool | None = None
    batching: dict[str, Any] | None = None
    scope: str | None = Field(None, description="graph mode: the variable scope taken at the first call")
    reuse: bool | None = Field(None, description="graph mode: share the scope's existing variables")


class BuildBody(_Body):
    input_shape: list[Any]  # one shape, or one per input for a layer of several inputs
    dtype: str | None = None


class ShapeBody(_Body):
    input_shape: list[int | None]


class ApplyBody(_Body):
    inputs: list[Any] | None = None  # JSON tensors (absent in a frame: the payloads are the inputs)
    training: bool | None = None
    input_refs: bool | None = Field(None, description="return the inputs' references (sha256 digests) even "
                                                      "when the apply recorded nothing for them")
    checkpoint: str | None = Field(None, description="compute with this named checkpoint's values instead of the "
                                                     "live ones (read-only: nothing is recorded)")


class WeightsBody(_Body):
    weights: list[Any] | None = None


class RefsBody(_Body):
    inputs: list[Any] | None = None  # input refs ("sha256:...") or tensors; null = unconditional


_NUMBER = {"anyOf": [{"type": "number"}, {"type": "boolean"},
                     {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]}
TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["dtype", "shape", "data"], "additionalProperties": False,
    "properties": {
        "dtype": {"type": "string", "enum": list(WIRE_DTYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array", "items": _NUMBER, "description": "flat, row-major"},
    },
}
_REF = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "tensors": {"type": "array", "items": TENSOR_SCHEMA},
    "refs": {"anyOf": [{"type": "array", "items": {"anyOf": [_REF, TENSOR_SCHEMA]}}, {"type": "null"}]},
}


def body_doc(model: type[_Body], field_kinds: dict[str, str] | None = None, *, frame: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself: ``model``'s JSON schema, with
    tensor fields spelled out (``field_kinds``: field -> "tensors" or "refs"), and the binary
    frame where the route accepts one."""
    schema = model.model_json_schema(by_alias=True)
    for name, kind in (field_kinds or {}).items():
        schema["properties"][name] = {**_FIELD_SCHEMAS[kind], "default": None}
    content: dict[str, Any] = {JSON_TYPE: {"schema": schema}}
    if frame:
        content[FRAME_CONTENT_TYPE] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


class Reply(NamedTuple):
    """A whole response, independent of the framework that sends it."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] | None = None
    layer_id: str | None = None  # the layer that answered: it labels the apply metrics

    def with_layer(self, layer_id: str) -> Reply:
        return self._replace(layer_id=layer_id)

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, media_type=self.content_type, headers=self.headers)


async def read_body(request: Request) -> bytes:
    """The body; its size was bounded by the limits middleware (``limits.py``), the one place
    that checks it, before and while it arrives."""
    return b"".join([chunk async for chunk in request.stream()])


async def receive_body(receive: Callable[[], Awaitable[Message]]) -> bytes:
    """``read_body`` straight from the ASGI messages (no ``Request``): the fast handlers' way."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _validate(model: type[_Body], data: object) -> Any:
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False, include_input=False)]
        raise InvalidArgument(f"invalid request body: {errors[0]['loc']}: {errors[0]['msg']}",
                              code="invalid_request", errors=errors) from None


async def decode(request: Request, model: type[_Body], limits: Settings,
                 tensor_field: str | None = None) -> tuple[Any, list[np.ndarray]]:
    """The validated body and its tensors (from JSON ``tensor_field`` or from the frame)."""
    raw = await read_body(request)
    return await decode_body(raw, request.headers.get("content-type"), model, limits, tensor_field)


async def decode_body(raw: bytes, content_type: str | None, model: type[_Body], limits: Settings,
                      tensor_field: str | None = None) -> tuple[Any, list[np.ndarray]]:
    """``decode`` of a body already read, sent with ``content_type`` (JSON when None). The
    middleware has bounded a JSON body by ``max_json_bytes`` already."""
    max_elements = limits.max_tensor_elements
    content_type = (content_type or JSON_TYPE).split(";")[0].strip().lower()
    try:
        if content_type == FRAME_CONTENT_TYPE:
            head = frame_header_length(raw)
            if head > limits.max_frame_header_bytes:
                raise PayloadTooLarge(f"a frame's JSON header of {head} bytes exceeds the limit of "
                                      f"{limits.max_frame_header_bytes} bytes", limit=limits.max_frame_header_bytes)
            header, arrays = decode_frame(raw, max_elements)
            return _validate(model, header), arrays
        if content_type not in (JSON_TYPE, ""):
            raise UnsupportedMediaType(f"content type {content_type!r} is not supported; send {JSON_TYPE} "
                                       f"or {FRAME_CONTENT_TYPE}")
        if len(raw) > LARGE_JSON_BYTES:  # per-element parsing: keep it off the event loop
            return await decode_in_thread(_decode_json, raw, model, max_elements, tensor_field)
        return _decode_json(raw, model, max_elements, tensor_field)
    except FrameError as exc:
        raise InvalidArgument(str(exc), code="invalid_tensor") from None


_decode_slots: asyncio.Semaphore | None = None
_decode_threads = 2


def set_decode_threads(threads: int) -> None:
    """How many large bodies may be decoded at once (``--json-decode-threads``)."""
    global _decode_threads, _decode_slots
    _decode_threads, _decode_slots = max(1, threads), None


async def decode_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, at most ``--json-decode-threads`` at once: each holds the
    GIL while it parses and builds Python objects, so more at once only multiply memory."""
    global _decode_slots
    if _decode_slots is None:
        _decode_slots = asyncio.Semaphore(_decode_threads)
    async with _decode_slots:
        return await run_in_threadpool(fn, *args)


def _decode_json(raw: bytes, model: type[_Body], max_elements: int,
                 tensor_field: str | None) -> tuple[Any, list[np.ndarray]]:
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    body = _validate(model, data)
    items = getattr(body, tensor_field) if tensor_field else None
    try:
        return body, [tensor_from_json(t, max_elements) for t in items or []]
    except FrameError as exc:
        raise InvalidArgument(str(exc), code="invalid_tensor") from None


def wants_frame(request: Request) -> bool:
    return FRAME_CONTENT_TYPE in request.headers.get("accept", "")


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), JSON_TYPE, headers)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_reply(payload, status, headers).response()


def json_tensor(array: np.ndarray) -> dict[str, Any]:
    """A JSON tensor; numpy data goes to orjson as is, unless it holds NaN or infinities."""
    flat = np.ascontiguousarray(array).ravel()
    finite = flat.dtype.kind != "f" or bool(np.isfinite(flat).all())
    return {"dtype": flat.dtype.name, "shape": list(np.shape(array)), "data": flat if finite else json_values(flat)}


def tensor_reply(payload: dict[str, Any], tensors: list[np.ndarray], key: str,
                 headers: dict[str, str] | None = None, *, frame: bool) -> Reply:
    """Tensors as a frame (``frame``: the request's Accept names it) or as JSON under ``key``."""
    if frame:
        return Reply(200, encode_frame(payload, tensors), FRAME_CONTENT_TYPE, headers)
    body = dict(payload)
    body[key] = [json_tensor(t) for t in tensors]
    return json_reply(body, headers=headers)


def tensor_response(request: Request, payload: dict[str, Any], tensors: list[np.ndarray], key: str,
                    headers: dict[str, str] | None = None) -> Response:
    return tensor_reply(payload, tensors, key, headers, frame=wants_frame(request)).response()
