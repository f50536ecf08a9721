"""The client's protocol core, without I/O: how calls become requests and responses results.

``Connection`` (sync) and ``AsyncConnection`` are thin shells that send what this module
prepares; both share every decision made here.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from layerserve.exceptions import LayerServeError, TransportError, UnavailableError, error_from_body
from layerserve.protocol import FRAME_CONTENT_TYPE, decode_frame, encode_frame, json_dumps, json_loads, tensor_to_json

__all__ = ["Call", "Request", "Result", "layer_path", "parse_response", "prepare", "prepare_request",
           "retry_delay", "transport_error"]

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
RETRIES = 3  # retries of an idempotent call after a transport failure or a 503
BACKOFF_S = 0.1  # first wait without a Retry-After, doubled per retry
MAX_WAIT_S = 5.0  # longest single wait, whatever Retry-After says


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


@dataclass
class Request:
    """A route's call before the wire format is chosen: ``prepare_request`` makes it a ``Call``
    (tensors as a binary frame or as JSON), ``tensor_key`` names the answer's tensors."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    tensors: list[np.ndarray] | None = None
    request_key: str = "inputs"
    accept_tensors: bool = False
    tensor_key: str = "outputs"


@dataclass
class Result:
    body: dict[str, Any]
    tensors: list[np.ndarray]
    headers: dict[str, str] = field(default_factory=dict)


def layer_path(graph: str, layer: str, suffix: str = "") -> str:
    return f"/v1/graphs/{quote(graph, safe='')}/layers/{quote(layer, safe='')}{suffix}"


def prepare(method: str, path: str, body: dict[str, Any] | None = None, tensors: list[np.ndarray] | None = None,
            *, binary: bool = True, request_key: str = "inputs", accept_tensors: bool = False,
            params: dict[str, str] | None = None) -> Call:
    """A request: tensors go as a binary frame (``binary``) or as JSON tensors under ``request_key``."""
    headers = {"accept": f"{FRAME_CONTENT_TYPE}, application/json" if binary and accept_tensors
               else "application/json",
               "x-request-id": uuid.uuid4().hex}  # the server logs it and every exception carries it
    if tensors is not None and binary:
        headers["content-type"] = FRAME_CONTENT_TYPE
        return Call(method, path, headers, encode_frame(body or {}, tensors), params or {})
    payload = dict(body or {})
    if tensors is not None:
        payload[request_key] = [tensor_to_json(t) for t in tensors]
    if body is None and tensors is None:
        return Call(method, path, headers, None, params or {})
    headers["content-type"] = "application/json"
    return Call(method, path, headers, json_dumps(payload), params or {})


def prepare_request(request: Request, *, binary: bool) -> Call:
    return prepare(request.method, request.path, request.body, request.tensors, binary=binary,
                   request_key=request.request_key, accept_tensors=request.accept_tensors)


def _json_tensors(body: dict[str, Any], tensor_key: str) -> list[np.ndarray]:
    out = []
    for t in body.pop(tensor_key, None) or []:
        out.append(np.asarray(t["data"], dtype=t["dtype"]).reshape(t["shape"]))
    return out


def parse_response(status: int, headers: dict[str, str], content: bytes, tensor_key: str = "outputs") -> Result:
    """The response's body and tensors, or the exception its error body describes."""
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type == FRAME_CONTENT_TYPE and status < 400:
        header, arrays = decode_frame(content)
        return Result(header, arrays, headers)
    try:
        body = json_loads(content) if content else {}
    except ValueError:
        body = {"error": {"code": "bad_response", "message": content[:200].decode(errors="replace")}}
    if status >= 400:
        raise error_from_body(status, body, headers)
    if not isinstance(body, dict):
        body = {"value": body}
    return Result(body, _json_tensors(body, tensor_key), headers)


def transport_error(call: Call, url: str, exc: Exception) -> TransportError:
    error = TransportError(f"{call.method} {url}{call.path} failed: {exc}", request_id=call.request_id)
    error.__cause__ = exc
    return error


def retry_delay(call: Call, error: LayerServeError, attempt: int) -> float | None:
    """Seconds to wait before retry ``attempt`` (0 first) of ``call`` after ``error``, or None to raise.

    Only idempotent calls are retried (the server may have acted on others), a bounded number of
    times, after a transport failure or a 503; waits honour ``Retry-After`` and are jittered, so
    clients turned away together do not come back together."""
    if not call.idempotent or attempt >= RETRIES:
        return None
    if isinstance(error, UnavailableError) and error.retry_after is not None:
        return min(MAX_WAIT_S, float(error.retry_after)) * random.uniform(1.0, 1.5)
    if isinstance(error, (UnavailableError, TransportError)):
        return min(MAX_WAIT_S, BACKOFF_S * 2.0**attempt) * random.uniform(0.5, 1.5)
    return None
