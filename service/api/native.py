"""The native HTTP API, ``/v1/graphs/{graph}/layers/...``: decode, call the data plane, encode."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from layerserve.protocol import FRAME_CONTENT_TYPE, FrameError, input_ref, json_number
from layerserve.server.api import views
from layerserve.server.api.wire import (
    LAYER_ID_KEY,
    ApplyBody,
    BuildBody,
    CreateLayerBody,
    PatchLayerBody,
    RefsBody,
    Reply,
    ShapeBody,
    WeightsBody,
    body_doc,
    decode,
    decode_body,
    json_response,
    json_tensor,
    parse_uint,
    read_body,
    tensor_reply,
    tensor_response,
)
from layerserve.server.config import Settings
from layerserve.server.core.layer import PendingUpdate
from layerserve.server.errors import InvalidArgument
from layerserve.server.plane import DataPlane, dispatch

__all__ = ["APPLY_PATH", "apply_reply", "graph_router", "native_router"]

T = TypeVar("T")
PREFIX = "/v1/graphs/{graph}/layers"
APPLY_PATH = PREFIX + "/{layer}/apply"
VERSION_HEADER = "X-Layer-Version"
_REFS_DOC = body_doc(RefsBody, {"inputs": "refs"})


def _plane(request: Request) -> DataPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


async def _body(request: Request, model: Any, tensor_field: str | None = None) -> tuple[Any, list[np.ndarray]]:
    s = request.app.state.settings
    return await decode(request, model, s, tensor_field)


def _refs(items: list[Any] | None, max_elements: int) -> list[str] | None:
    """Input references, given as digests or as the tensors themselves."""
    from layerserve.protocol import tensor_from_json

    if items is None:
        return None
    refs = []
    for item in items:
        if isinstance(item, str) and item.startswith("sha256:"):
            refs.append(item)
        elif isinstance(item, dict):
            try:
                refs.append(input_ref(tensor_from_json(item, max_elements)))
            except FrameError as exc:
                raise InvalidArgument(str(exc), code="invalid_tensor") from None
        else:
            raise InvalidArgument("inputs holds input references ('sha256:...') or tensors", code="invalid_ref")
    return refs


def _if_match(request: Request) -> int | None:
    """The layer version a write expects (``If-Match: "7"``, quotes optional)."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    version = parse_uint(raw.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise InvalidArgument(f"If-Match must be a layer version as given in X-Layer-Version, got {raw[:40]!r}",
                              code="invalid_if_match")
    return version


def _version(version: int) -> dict[str, str]:
    return {VERSION_HEADER: str(version)}


def _described(view: dict[str, Any], status: int = 200) -> Response:
    return json_response(view, status, headers=_version(view["version"]))


def _update_json(update: PendingUpdate) -> dict[str, Any]:
    return {"variable": update.variable, "input": update.ref, "value": json_tensor(update.value)}


def _loss_json(loss: dict[str, Any]) -> dict[str, Any]:
    return {**loss, "value": json_number(float(loss["value"])), "dtype": loss["value"].dtype.name}


native_router = APIRouter(prefix=PREFIX, tags=["layers"])


@native_router.post("", status_code=201, openapi_extra=body_doc(CreateLayerBody))
async def create_layer(graph: str, request: Request) -> Response:
    body, _ = await _body(request, CreateLayerBody)
    plane = _plane(request)
    layer = await _call(plane.create_layer, graph, body.class_name, body.config, name=body.name,
                        trainable=body.trainable, dtype=body.dtype, scope=body.scope, reuse=body.reuse or False,
                        batching=body.batching)
    return _described(await _call(views.describe, plane, graph, layer.id), 201)


@native_router.get("")
async def list_layers(graph: str, request: Request) -> Response:
    return json_response({"layers": await _call(views.list_layers, _plane(request), graph)})


@native_router.get("/{layer}")
async def describe_layer(graph: str, layer: str, request: Request) -> Response:
    return _described(await _call(views.describe, _plane(request), graph, layer))


@native_router.patch("/{layer}", openapi_extra=body_doc(PatchLayerBody))
async def patch_layer(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, PatchLayerBody)
    plane = _plane(request)
    found = await _call(plane.patch_layer, graph, layer, trainable=body.trainable, batching=body.batching,
                        if_match=_if_match(request), scope=body.scope, reuse=body.reuse)
    return _described(await _call(views.describe, plane, graph, found.id))


@native_router.delete("/{layer}", status_code=204)
async def delete_layer(graph: str, layer: str, request: Request) -> Response:
    request.scope[LAYER_ID_KEY] = await _call(_plane(request).delete_layer, graph, layer, _if_match(request))
    return Response(status_code=204)


@native_router.post("/{layer}/build", openapi_extra=body_doc(BuildBody))
async def build_layer(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, BuildBody)
    plane = _plane(request)
    found = await _call(plane.build, graph, layer, body.input_shape, body.dtype, _if_match(request))
    return _described(await _call(views.describe, plane, graph, found.id))


async def apply_reply(plane: DataPlane, settings: Settings, graph: str, layer: str, raw: bytes,
                      content_type: str | None, accept: str) -> Reply:
    """The whole apply, from the body's bytes to the response (``layerserve.server.api.hot`` serves it).
    ``input_refs`` is in the response when the body asks for it or when the apply recorded
    losses or updates for its inputs (the digest is computed only then)."""
    body, inputs = await decode_body(raw, content_type, ApplyBody, settings, "inputs")
    result = await dispatch.apply(plane, graph, layer, inputs, training=body.training, refs=bool(body.input_refs),
                                  checkpoint=body.checkpoint)
    frame = FRAME_CONTENT_TYPE in accept
    payload = {} if result.input_refs is None else {"input_refs": result.input_refs}
    elements = 0 if frame else sum(y.size for y in result.outputs)
    reply = await dispatch.off_loop_if_large(elements, functools.partial(tensor_reply, frame=frame), payload,
                                             result.outputs, "outputs", _version(result.version))
    return reply.with_layer(result.layer.id)


@native_router.post("/{layer}/apply", openapi_extra=body_doc(ApplyBody, {"inputs": "tensors"}, frame=True))
async def apply_layer(graph: str, layer: str, request: Request) -> Response:
    """Served by ``layerserve.server.api.hot`` ahead of this router; kept for the schema and mounted apps."""
    settings = request.app.state.settings
    raw = await read_body(request)
    reply = await apply_reply(_plane(request), settings, graph, layer, raw, request.headers.get("content-type"),
                              request.headers.get("accept", ""))
    request.scope[LAYER_ID_KEY] = reply.layer_id
    return reply.response()


@native_router.post("/{layer}/compute_output_shape", openapi_extra=body_doc(ShapeBody))
async def compute_output_shape(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, ShapeBody)
    shape = await _call(_plane(request).compute_output_shape, graph, layer, body.input_shape)
    return json_response({"output_shape": shape})


@native_router.get("/{layer}/variables")
async def get_variables(graph: str, layer: str, request: Request, collection: str | None = None, *,
                        values: bool = False) -> Response:
    plane = _plane(request)
    view = await _call(views.describe, plane, graph, layer)
    headers = _version(view["version"])
    if collection not in (None, "trainable", "non_trainable"):
        raise InvalidArgument("collection is 'trainable' or 'non_trainable'", code="invalid_argument")
    names = {None: [v["name"] for v in view["variables"]], "trainable": view["trainable_variables"],
             "non_trainable": view["non_trainable_variables"]}[collection]
    described = [v for n in names for v in view["variables"] if v["name"] == n]
    if not values:
        return json_response({"variables": described}, headers=headers)
    all_names, arrays, version = await _call(plane.read_weights, graph, layer)
    chosen = [arrays[all_names.index(n)] for n in names]
    return tensor_response(request, {"variables": described}, chosen, "values", headers=_version(version))


@native_router.get("/{layer}/weights")
async def get_weights(graph: str, layer: str, request: Request) -> Response:
    names, arrays, version = await _call(_plane(request).read_weights, graph, layer)
    return tensor_response(request, {"names": names}, arrays, "weights", headers=_version(version))


@native_router.put("/{layer}/weights", openapi_extra=body_doc(WeightsBody, {"weights": "tensors"}, frame=True))
async def set_weights(graph: str, layer: str, request: Request) -> Response:
    _, arrays = await _body(request, WeightsBody, "weights")
    plane = _plane(request)
    found = await _call(plane.set_weights, graph, layer, arrays, _if_match(request))
    view = await _call(views.describe, plane, graph, found.id)
    return json_response({"names": view["variables"]}, headers=_version(view["version"]))


@native_router.get("/{layer}/losses")
async def get_losses(graph: str, layer: str, request: Request) -> Response:
    losses = await _call(_plane(request).losses, graph, layer)
    return json_response({"losses": [_loss_json(x) for x in losses]})


@native_router.post("/{layer}/losses:for", openapi_extra=_REFS_DOC)
async def losses_for(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, RefsBody)
    refs = _refs(body.inputs, request.app.state.settings.max_tensor_elements)
    losses = await _call(_plane(request).losses_for, graph, layer, refs)
    return json_response({"losses": [_loss_json(x) for x in losses]})


@native_router.get("/{layer}/updates")
async def get_updates(graph: str, layer: str, request: Request) -> Response:
    updates = await _call(_plane(request).updates_for, graph, layer, None, everything=True)
    return json_response({"updates": [_update_json(u) for u in updates]})


@native_router.post("/{layer}/updates:for", openapi_extra=_REFS_DOC)
async def updates_for(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, RefsBody)
    refs = _refs(body.inputs, request.app.state.settings.max_tensor_elements)
    updates = await _call(_plane(request).updates_for, graph, layer, refs)
    return json_response({"updates": [_update_json(u) for u in updates]})


@native_router.post("/{layer}/updates:run", openapi_extra=_REFS_DOC)
async def run_updates(graph: str, layer: str, request: Request) -> Response:
    body, _ = await _body(request, RefsBody)
    refs = _refs(body.inputs, request.app.state.settings.max_tensor_elements)
    plane = _plane(request)
    changed = await _call(plane.run_updates, graph, layer, refs, _if_match(request))
    return json_response({"updated_variables": changed}, headers=_version(await _call(plane.version, graph, layer)))


@native_router.get("/{layer}/onnx")
async def export_onnx(graph: str, layer: str, request: Request) -> Response:
    data = await _call(_plane(request).export_onnx, graph, layer)
    return Response(data, media_type="application/x-onnx")


graph_router = APIRouter(prefix="/v1/graphs", tags=["graphs"])


@graph_router.get("")
async def list_graphs(request: Request) -> Response:
    return json_response({"graphs": await _call(_plane(request).graph_names)})


@graph_router.get("/{graph}/variables")
async def global_variables(graph: str, request: Request) -> Response:
    return json_response({"variables": await _call(views.global_variables, _plane(request), graph)})


@graph_router.get("/{graph}/variables/{name:path}")
async def variable_value(graph: str, name: str, request: Request) -> Response:
    described, value = await _call(_plane(request).variable_value, graph, name)
    return tensor_response(request, {"variable": described}, [value], "values")


@graph_router.post("/{graph}/updates:run", openapi_extra=_REFS_DOC)
async def run_graph_updates(graph: str, request: Request) -> Response:
    """Every visible pending update of every layer: running TF1's UPDATE_OPS collection."""
    body, _ = await _body(request, RefsBody)
    refs = _refs(body.inputs, request.app.state.settings.max_tensor_elements)
    changed = await _call(_plane(request).run_updates, graph, None, refs)
    return json_response({"updated_variables": changed})
