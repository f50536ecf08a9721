"""The client's protocol core, without I/O: how calls become requests and responses results.

``Connection`` (sync) and ``AsyncConnection`` are thin shells that send what this module
prepares; both share every decision made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from layerserve.exceptions import error_from_body
from layerserve.protocol import FRAME_CONTENT_TYPE, decode_frame, encode_frame, json_dumps, json_loads, tensor_to_json

__all__ = ["Call", "Request", "Result", "layer_path", "parse_response", "prepare", "prepare_request"]

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


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
               else "application/json"}
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
        raise error_from_body(status, body)
    if not isinstance(body, dict):
        body = {"value": body}
    return Result(body, _json_tensors(body, tensor_key), headers)
