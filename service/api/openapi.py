"""The OpenAPI document as the server really behaves: FastAPI's generated schema, corrected.

Routes read their bodies themselves, so FastAPI knows neither the errors they answer nor the
protocol bodies; this module documents each operation's error statuses with the body it really
gets (the contract's ``{"error": {code, message, details}}`` natively, ``{"error": "<message>"}``
on ``/v2``), the binary frame, the v2 inference bodies and ``/metrics`` as text, and drops the
query parameters that only exist because two paths share a handler.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from layerserve.protocol import FRAME_CONTENT_TYPE

__all__ = ["ERROR_STATUSES", "install_openapi"]

FRAME_DOC = ("Binary tensor frame, layout version 1 (`LSF1`): magic, a 4-byte little-endian header length, a JSON "
             "header naming each tensor's dtype, shape and byte range, padding, then the raw little-endian tensor "
             "bytes (docs/binary-frame.md).")
_NATIVE_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
    "error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string", "description": "stable machine-readable code, e.g. `not_found`"},
        "message": {"type": "string"},
        "details": {"type": "object", "description": "`exception`: the Python exception TensorFlow raises here; "
                                                     "more keys per code"}}}}}
_OIP_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_REASONS = {400: "malformed request body (JSON or frame)", 401: "missing or wrong bearer token",
            403: "the token may not address this graph", 404: "no such graph, layer, variable or route",
            405: "method not allowed on this path", 409: "conflicts with the layer's state or version",
            413: "body or model larger than the limit", 415: "unsupported content type",
            422: "a value the layer or the contract rejects", 503: "starting, store unavailable or too slow "
            "(`Retry-After` says when to retry)"}
# Which errors each kind of operation can answer.
ERROR_STATUSES: dict[str, tuple[int, ...]] = {
    "native_read": (401, 403, 404, 422, 503),
    "native_write": (400, 401, 403, 404, 409, 413, 415, 422, 503),
    "oip": (400, 401, 403, 404, 413, 503),  # the protocol reads any content type as its JSON or binary form
    "oip_read": (401, 403, 404, 503),
    "guarded": (401, 403),
}
_INTERNAL = "``layerserve.server"  # a docstring sentence about our modules is not for API users
_DESCRIPTIONS = {"/apply": "Run the layer on the inputs (JSON tensors or a binary frame); the outputs come back "
                           "in the format the Accept header prefers.",
                 "/infer": "Open Inference Protocol inference: `input_0`, ... in; `output_0`, ... out."}


def _kind(path: str, method: str, op: dict[str, Any]) -> str | None:
    if path.startswith("/v2/health") or path in ("/healthz", "/readyz"):
        return None
    if path == "/v2" or path.startswith("/v2/"):
        return "oip" if method == "post" else "oip_read"
    if path.startswith("/v1/graphs/"):
        return "native_write" if method != "get" else "native_read"
    return "guarded"


def _error_responses(kind: str, *, oip: bool) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/OipError" if oip else "#/components/schemas/Error"}
    out: dict[str, Any] = {}
    for status in ERROR_STATUSES[kind]:
        response: dict[str, Any] = {"description": _REASONS[status], "content": {"application/json": {"schema": schema}}}
        if status == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
        out[str(status)] = response
    return out


def _fix_operation(path: str, method: str, op: dict[str, Any], infer: dict[str, Any]) -> None:
    names = set(re.findall(r"{(\w+)", path))
    op["parameters"] = [p for p in op.get("parameters", []) if p["in"] != "query" or p["name"] not in
                        ("model", "version", "graph", "layer") or p["name"] in names]
    if not op["parameters"]:
        op.pop("parameters")
    if _INTERNAL in op.get("description", ""):
        op["description"] = next((text for end, text in _DESCRIPTIONS.items() if path.endswith(end)), "")
    responses = {k: v for k, v in op["responses"].items() if k != "422"}
    kind = _kind(path, method, op)
    if kind is not None:
        responses.update(_error_responses(kind, oip=kind.startswith("oip")))
    if path.endswith("/infer"):
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": infer},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary", "description":
                                         "binary tensor data extension: the JSON request, then the tensors' raw "
                                         "bytes; Inference-Header-Content-Length gives the JSON's length"}}}}
        responses["200"] = {"description": "the outputs", "content": {"application/json": {"schema": _INFER_RESPONSE}}}
    elif path.endswith("/apply") or path.endswith("/weights"):
        content = responses.setdefault("200", {"description": "OK"}).setdefault("content", {})
        content[FRAME_CONTENT_TYPE] = {"schema": {"type": "string", "format": "binary", "description": FRAME_DOC}}
    if path == "/metrics":
        responses["200"] = {"description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}
    op["responses"] = responses
    for content_type, media in op.get("requestBody", {}).get("content", {}).items():
        if content_type == FRAME_CONTENT_TYPE:
            media["schema"]["description"] = FRAME_DOC


_TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string", "description": "input_0, input_1, ... / output_0, ..."},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "datatype": {"type": "string", "enum": ["FP16", "FP32", "FP64"]},
    "parameters": {"type": "object", "description": "`binary_data_size` with the binary extension"},
    "data": {"type": "array", "description": "row-major values (absent with the binary extension)"}}}
_INFER_RESPONSE = {"type": "object", "required": ["model_name", "outputs"], "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
    "parameters": {"type": "object"}, "outputs": {"type": "array", "items": _TENSOR}}}


def _schema(app: FastAPI) -> dict[str, Any]:
    from layerserve.server.api.oip import InferRequest

    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    infer = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components.update(infer.pop("$defs", {}))
    components.update({"Error": _NATIVE_ERROR, "OipError": _OIP_ERROR, "InferRequest": infer})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            _fix_operation(path, method, op, {"$ref": "#/components/schemas/InferRequest"})
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve the corrected schema at /openapi.json (computed once)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
