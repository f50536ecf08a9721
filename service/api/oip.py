"""Open Inference Protocol (KServe v2) endpoints: every layer is also a v2 model.

``{model}`` without a ``.`` is a layer (id or unique name) of the default graph; with one, the
part before the first ``.`` is the graph. Tensors come as JSON ``data`` or through the binary
tensor data extension (``Inference-Header-Content-Length``: the JSON header, then the raw
little-endian bytes of the inputs that declare ``binary_data_size``). Errors use the
protocol's body ``{"error": "<message>"}`` with the status the native API would give.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from layerserve.protocol import MAX_RANK, FrameError, json_array, json_values
from layerserve.server.api import views
from layerserve.server.api.errors import error_reply
from layerserve.server.api.routes import split_model
from layerserve.server.api.wire import (
    LARGE_JSON_BYTES,
    LAYER_ID_KEY,
    Reply,
    decode_in_thread,
    json_reply,
    parse_uint,
    read_body,
)
from layerserve.server.errors import BadRequest, LayerServeError, NotFound, PayloadTooLarge
from layerserve.server.plane import DataPlane, dispatch
from layerserve.server.plane.checkpoints import LIVE_VERSIONS
from layerserve.server.plane.program_models import programs_of
from layerserve.server.version import installed_version

__all__ = ["INFER_PATHS", "InferRequest", "infer_reply", "oip_router", "split_model"]

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT_NAME, OUTPUT_NAME = "input_0", "output_0"  # a layer's k-th input/output is input_k / output_k
DATATYPES = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
TO_DATATYPE = {v: k for k, v in DATATYPES.items()}
_OUTPUT_NAME = re.compile(r"output_(0|[1-9][0-9]{0,5})")
INFER_PATHS = ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer")
# Named programs also take and give integers and booleans.
PROGRAM_DATATYPES = {**DATATYPES, "INT32": "int32", "INT64": "int64", "BOOL": "bool"}
TO_PROGRAM_DATATYPE = {v: k for k, v in PROGRAM_DATATYPES.items()}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # "3" is not a dimension, nor 3.5


class InferInput(_Model):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestedOutput(_Model):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(_Model):
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None


class OipError(LayerServeError):
    status, code = 400, "invalid_infer_request"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


async def _guarded(handler: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await handler()
    except LayerServeError as exc:
        return error_reply(exc, "/v2").response()


def _plane(request: Request) -> DataPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


oip_router = APIRouter(prefix="/v2", tags=["open inference protocol"])


@oip_router.get("")
async def server_metadata() -> Response:
    return _json({"name": "layerserve", "version": installed_version(),
                  "extensions": ["binary_tensor_data", "model_repository", "statistics"]})


@oip_router.get("/health/live")
async def live() -> Response:
    return _json({"live": True})


@oip_router.get("/health/ready")
async def ready(request: Request) -> Response:
    is_ready = bool(getattr(request.app.state, "ready", False))
    return _json({"ready": is_ready}, 200 if is_ready else 503)


class RepositoryIndexBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ready: bool = False


def model_name(graph: str, layer: str) -> str:
    """The protocol's name of a layer: its name in the default graph (unless it holds a dot),
    ``graph.layer`` elsewhere; ``split_model`` reads it back."""
    return layer if graph == "default" and "." not in layer else f"{graph}.{layer}"


def _index(plane: DataPlane) -> list[dict[str, str]]:
    out = []
    for graph in plane.graph_names():
        try:
            layers = views.list_layers(plane, graph)
        except LayerServeError:
            continue  # removed (or unreadable) since it was listed
        out += [{"name": model_name(graph, view["name"]), "version": "1", "state": "READY"} for view in layers]
    return out


@oip_router.post("/repository/index")
async def repository_index(request: Request) -> Response:
    """The repository extension's index: every layer of every graph, all loaded (``READY``)."""
    async def handle() -> Response:
        raw = await request.body()
        try:
            RepositoryIndexBody.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise BadRequest(f"invalid repository index request: {exc.errors()[0]['msg']}") from None
        return _json(await run_in_threadpool(_index, _plane(request)))
    return await _guarded(handle)


def _stats(plane: DataPlane, metrics: Any, models: list[str], *, all_models: bool) -> dict[str, Any]:
    out = []
    for model in models:
        graph, ref = split_model(model)
        try:
            view = views.describe(plane, graph, ref)
        except LayerServeError:
            if all_models:
                continue  # deleted since the index was read
            raise
        counts = metrics.inference_stats(graph, {view["id"], view["name"], ref, model})
        out.append({"name": model, "version": "1", "last_inference": counts["last_ms"],
                    "inference_count": counts["success"], "execution_count": counts["success"],
                    "inference_stats": {"success": {"count": counts["success"], "ns": counts["success_ns"]},
                                        "fail": {"count": counts["fail"], "ns": counts["fail_ns"]}},
                    "batch_stats": []})
    return {"model_stats": out}


@oip_router.get("/models/stats")
@oip_router.get("/models/{model}/stats")
@oip_router.get("/models/{model}/versions/{version}/stats")
async def model_statistics(request: Request, model: str | None = None, version: str | None = None) -> Response:
    """The statistics extension: successful and failed inferences (native applies included) per layer."""
    async def handle() -> Response:
        plane = _plane(request)
        models = [model] if model else [m["name"] for m in await run_in_threadpool(_index, plane)]
        return _json(await run_in_threadpool(functools.partial(_stats, all_models=model is None), plane,
                                             request.app.state.metrics, models))
    return await _guarded(handle)


@oip_router.get("/models/{model}")
@oip_router.get("/models/{model}/versions/{version}")
async def model_metadata(model: str, request: Request, version: str | None = None) -> Response:
    async def handle() -> Response:
        graph, layer = split_model(model)
        if programs_of(_plane(request)).named(graph, layer) is not None:
            return _json(await run_in_threadpool(_program_metadata, _plane(request), graph, layer, model))
        meta = await run_in_threadpool(_metadata, _plane(request), graph, layer, model)
        names = await run_in_threadpool(request.app.state.checkpoints.names, graph)
        if version not in (None, "", *LIVE_VERSIONS) and version not in names:
            raise NotFound(f"model {model!r} has no version {version!r}: its versions are 1 (the live weights) "
                           "and its graph's checkpoints", code="checkpoint_not_found")
        return _json({**meta, "versions": ["1", *names]})
    return await _guarded(handle)


def _program_metadata(plane: DataPlane, graph: str, name: str, model: str) -> dict[str, Any]:
    meta = programs_of(plane).metadata(graph, name)
    inputs = [{"name": k, "datatype": TO_PROGRAM_DATATYPE.get(v["datatype"], "FP32"), "shape": v["shape"]}
              for k, v in meta["inputs"].items()]
    outputs = [{"name": k, "datatype": "FP32", "shape": [-1]} for k in meta["outputs"]]
    return {"name": model, "versions": ["1"], "platform": "layerserve_onnxruntime", "inputs": inputs,
            "outputs": outputs, "parameters": {"program": name, "graph": graph}}


@oip_router.get("/models/{model}/ready")
@oip_router.get("/models/{model}/versions/{version}/ready")
async def model_ready(model: str, request: Request, version: str | None = None) -> Response:
    async def handle() -> Response:
        graph, layer = split_model(model)
        if programs_of(_plane(request)).named(graph, layer) is None:
            await run_in_threadpool(views.describe, _plane(request), graph, layer)
        return _json({"name": model, "ready": True})
    return await _guarded(handle)


async def infer_reply(plane: DataPlane, settings: Any, model: str, read: Callable[[], Awaitable[bytes]],
                      header_length: str | None, version: str | None = None) -> Reply:
    """The whole inference, errors in the protocol's body (``layerserve.server.api.hot`` serves it);
    ``read`` gives the request body, read once the model is known to exist. A ``version`` other
    than the live one (``1``) names a checkpoint of the model's graph: its values compute."""
    checkpoint = None if version in (None, "", *LIVE_VERSIONS) else version
    try:
        graph, layer = split_model(model)
        if programs_of(plane).named(graph, layer) is not None:
            return await _infer_program(plane, settings, model, graph, layer, await read(), header_length)
        kind = plane.layer(graph, layer)[1].kind
        raw = await read()
        json_bytes = len(raw) if header_length is None else parse_uint(header_length) or 0
        if json_bytes > settings.max_json_bytes:
            raise PayloadTooLarge(f"the JSON part of {json_bytes} bytes exceeds the limit of {settings.max_json_bytes} "
                                  "bytes; send large tensors as binary data", limit=settings.max_json_bytes)
        if json_bytes > LARGE_JSON_BYTES:
            body, xs = await decode_in_thread(_decode_infer, raw, header_length, settings, kind.num_inputs)
        else:
            body, xs = _decode_infer(raw, header_length, settings, kind.num_inputs)
        result = await dispatch.apply(plane, graph, layer, xs, training=_training(body.parameters), refs=False,
                                      checkpoint=checkpoint)
        size = sum(y.size for y in result.outputs)
        reply = await dispatch.off_loop_if_large(0 if _wants_binary(body) else size, _encode_infer, model, body,
                                                 result.outputs, checkpoint or "1")
        return reply.with_layer(result.layer.id)
    except LayerServeError as exc:
        return error_reply(exc, "/v2")


async def _infer_program(plane: DataPlane, settings: Any, model: str, graph: str, name: str, raw: bytes,
                         header_length: str | None) -> Reply:
    """A named program as a v2 model: inputs and outputs by the names it was exported with."""
    split = _header_length(header_length, len(raw))
    try:
        body = InferRequest.model_validate(orjson.loads(raw[:split]))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise OipError(f"invalid inference request: {str(exc).splitlines()[0]}") from None
    binary, offset, feeds = memoryview(raw)[split:], 0, {}
    for spec in body.inputs:
        tensor, used = _input_tensor(spec, binary[offset:], settings.max_tensor_elements, PROGRAM_DATATYPES)
        feeds[spec.name], offset = tensor, offset + used
    entry = programs_of(plane).named(graph, name) or {}
    names = [o.name for o in body.outputs] if body.outputs else list(entry.get("outputs", {}))
    ys = await dispatch.cancellable(programs_of(plane).run_named, graph, name, feeds, names)
    return _encode_named(model, body, names, ys)


def _encode_named(model: str, body: InferRequest, names: list[str], ys: list[np.ndarray]) -> Reply:
    binary, outputs, payloads = _wants_binary(body), [], []
    for name, y in zip(names, ys, strict=True):
        y = np.asarray(y, order="C")
        out: dict[str, Any] = {"name": name, "datatype": TO_PROGRAM_DATATYPE[y.dtype.name], "shape": list(y.shape)}
        if binary:
            payloads.append(y.astype(y.dtype.newbyteorder("<"), copy=False))
            out["parameters"] = {"binary_data_size": payloads[-1].nbytes}
        else:
            out["data"] = y.ravel().tolist()
        outputs.append(out)
    head: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": outputs}
    if body.id is not None:
        head["id"] = body.id
    if not binary:
        return json_reply(head)
    header = orjson.dumps(head)
    return Reply(200, b"".join([header, *(p.data for p in payloads)]), "application/octet-stream",
                 {HEADER_LENGTH: str(len(header))})


@oip_router.post("/models/{model}/infer")
@oip_router.post("/models/{model}/versions/{version}/infer")
async def infer(model: str, request: Request, version: str | None = None) -> Response:
    """Served by ``layerserve.server.api.hot`` ahead of this router; kept for the schema and mounted apps."""
    settings = request.app.state.settings
    reply = await infer_reply(_plane(request), settings, model, lambda: read_body(request),
                              request.headers.get(HEADER_LENGTH), version)
    request.scope[LAYER_ID_KEY] = reply.layer_id
    return reply.response()


# ---- metadata ----------------------------------------------------------------------------
def _metadata(plane: DataPlane, graph: str, layer: str, model: str) -> dict[str, Any]:
    view = views.describe(plane, graph, layer)
    kind = plane.layer(graph, layer)[1].kind
    if kind.num_inputs != 1 or kind.num_outputs != 1:
        return _multi_metadata(view, kind, model)
    dtype = TO_DATATYPE.get(view["dtype"] or "float32", "FP32")
    meta: dict[str, Any] = {"name": model, "versions": ["1"], "platform": "layerserve_onnxruntime",
                            "parameters": {"class": view["class"], "graph": view["graph"], "id": view["id"],
                                           "built": view["built"]}}
    if view["built"]:
        shape = [-1 if d is None else d for d in view["build_input_shape"]]
        shape[0] = -1
        out = plane.compute_output_shape(graph, layer, view["build_input_shape"])
        out_shape = [-1 if d is None else d for d in out]
    else:  # no fixed signature until the first infer builds it
        spec = view["input_spec"] or {}
        rank = spec.get("ndim") or spec.get("min_ndim") or 1
        shape, out_shape = [-1] * rank, [-1]
    meta["inputs"] = [{"name": INPUT_NAME, "datatype": dtype, "shape": shape}]
    meta["outputs"] = [{"name": OUTPUT_NAME, "datatype": dtype, "shape": out_shape}]
    return meta


def _multi_metadata(view: dict[str, Any], kind: Any, model: str) -> dict[str, Any]:
    """Layers with several inputs or outputs (custom layers): every input, as the graph declares it."""
    dtype = TO_DATATYPE.get(view["dtype"] or "float32", "FP32")
    declared = kind.input_metadata() if hasattr(kind, "input_metadata") else []
    inputs = []
    for k in range(kind.num_inputs):
        meta = declared[k] if k < len(declared) else {"datatype": view["dtype"], "shape": [-1]}
        inputs.append({"name": f"input_{k}", "datatype": TO_DATATYPE.get(meta["datatype"], dtype),
                       "shape": list(meta["shape"]) or [-1]})
    outputs = [{"name": f"output_{k}", "datatype": dtype, "shape": [-1]} for k in range(kind.num_outputs)]
    return {"name": model, "versions": ["1"], "platform": "layerserve_onnxruntime", "inputs": inputs,
            "outputs": outputs, "parameters": {"class": view["class"], "graph": view["graph"], "id": view["id"],
                                               "built": view["built"]}}


# ---- infer -------------------------------------------------------------------------------
def _decode_infer(raw: bytes, header_length: str | None, settings: Any,
                  n_inputs: int = 1) -> tuple[InferRequest, list[np.ndarray]]:
    """The request and its input tensors in the layer's order (JSON data or binary payloads)."""
    split = _header_length(header_length, len(raw))
    try:
        body = InferRequest.model_validate(orjson.loads(raw[:split]))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON inference header: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise OipError(f"invalid inference request: {list(first['loc'])}: {first['msg']}") from None
    expected = [f"input_{k}" for k in range(n_inputs)]
    if sorted(i.name for i in body.inputs) != sorted(expected):
        raise OipError(f"the model takes the inputs {expected}, got {[i.name for i in body.inputs]}")
    for out in body.outputs or []:
        if not _OUTPUT_NAME.fullmatch(out.name):
            raise OipError(f"unknown output {out.name!r}; the model's outputs are output_0, output_1, ...")
    binary, offset, tensors = memoryview(raw)[split:], 0, {}
    for spec in body.inputs:  # binary payloads follow the header in the order the inputs are listed
        tensor, used = _input_tensor(spec, binary[offset:], settings.max_tensor_elements)
        tensors[spec.name], offset = tensor, offset + used
    if offset != len(binary):
        raise OipError(f"{len(binary) - offset} bytes after the header belong to no input's binary_data_size")
    return body, [tensors[name] for name in expected]


def _header_length(value: str | None, total: int) -> int:
    if value is None:
        return total
    length = parse_uint(value.strip())
    if length is None or length > total:
        raise BadRequest(f"{HEADER_LENGTH} must be an integer no larger than the body ({total} bytes)")
    return length


def _input_tensor(spec: InferInput, binary: memoryview, max_elements: int,
                  datatypes: dict[str, str] = DATATYPES) -> tuple[np.ndarray, int]:
    """The tensor and how many bytes of the binary section it took."""
    dtype_name = datatypes.get(spec.datatype)
    if dtype_name is None:
        raise OipError(f"datatype {spec.datatype!r} is not supported; use one of {', '.join(datatypes)}")
    if any(d < 0 for d in spec.shape) or len(spec.shape) > MAX_RANK:
        raise OipError(f"input shape must be at most {MAX_RANK} non-negative dimensions, got {spec.shape[:40]}")
    count = _element_count(spec.shape, max_elements)
    dtype = np.dtype(dtype_name).newbyteorder("<")
    size = spec.parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or size > len(binary):
            raise OipError(f"binary_data_size {size} does not match {spec.datatype} x {spec.shape} "
                           f"({count * dtype.itemsize} bytes) or the {len(binary)} bytes left after the header")
        return np.frombuffer(binary, dtype=dtype, count=count).reshape(spec.shape), size
    return _json_data(spec.data, dtype, count, spec.shape), 0


def _element_count(shape: list[int], max_elements: int) -> int:
    """The product of ``shape``, refused as soon as it passes ``max_elements`` (no overflow)."""
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > max_elements:
            raise OipError(f"input of shape {shape[:40]} has more elements than the limit of {max_elements}")
    return count


def _json_data(data: Any, dtype: np.dtype[Any], count: int, shape: list[int]) -> np.ndarray:
    if not isinstance(data, list):
        raise OipError("input data must be a list (flat or nested, row-major)")
    try:
        array = json_array(data, dtype)
    except FrameError as exc:
        raise OipError(f"input data is not a list of {dtype.name} numbers: {exc}") from None
    if array.size != count:
        raise OipError(f"input data has {array.size} elements; shape {shape} needs {count}")
    return array.reshape(shape)


def _training(parameters: dict[str, Any]) -> bool | None:
    value = parameters.get("training")
    if value is not None and not isinstance(value, bool):
        raise OipError(f"parameter 'training' must be true or false, got {value!r}")
    return value


def _wants_binary(body: InferRequest) -> bool:
    if body.outputs:
        return bool(body.outputs[0].parameters.get("binary_data", body.parameters.get("binary_data_output", False)))
    return bool(body.parameters.get("binary_data_output", False))


def _encode_infer(model: str, body: InferRequest, ys: list[np.ndarray], version: str = "1") -> Reply:
    wanted = [o.name for o in body.outputs] if body.outputs else [f"output_{k}" for k in range(len(ys))]
    binary, outputs, payloads = _wants_binary(body), [], []
    for name in wanted:
        k = int(name[7:])
        if k >= len(ys):
            raise OipError(f"unknown output {name!r}; the model has {len(ys)} output(s)")
        y = np.asarray(ys[k], order="C")
        datatype = TO_DATATYPE.get(y.dtype.name)
        if datatype is None:
            raise LayerServeError(f"output dtype {y.dtype.name} has no v2 datatype")
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(y.shape)}
        if binary:
            payloads.append(y.astype(y.dtype.newbyteorder("<"), copy=False))  # joined below: one copy
            out["parameters"] = {"binary_data_size": payloads[-1].nbytes}
        else:  # non-finite values as the native API writes them ("NaN", "Infinity", "-Infinity")
            finite = y.dtype.kind != "f" or bool(np.isfinite(y).all())
            out["data"] = y.ravel() if finite else json_values(y)
        outputs.append(out)
    head: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if body.id is not None:
        head["id"] = body.id
    if not binary:
        return json_reply(head)
    header = orjson.dumps(head)
    return Reply(200, b"".join([header, *(p.data for p in payloads)]), "application/octet-stream", {HEADER_LENGTH: str(len(header))})
