"""Programs and graph variables over HTTP: ``/v1/graphs/{graph}/programs`` and ``.../variables``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from layerserve.protocol import FRAME_CONTENT_TYPE
from layerserve.server.api.wire import (
    Reply,
    _Body,
    body_doc,
    decode,
    decode_body,
    json_response,
    read_body,
    tensor_reply,
)
from layerserve.server.errors import InvalidArgument
from layerserve.server.plane import dispatch
from layerserve.server.plane.program_models import ProgramModels, programs_of

__all__ = ["RUN_PATH", "programs_for", "programs_router", "run_reply"]

programs_router = APIRouter(prefix="/v1/graphs", tags=["programs"])


class CreateVariableBody(_Body):
    name: str
    trainable: bool = True
    value: list[dict[str, object]] | None = Field(None, description="JSON: the initial value as one tensor")


class RegisterProgramBody(_Body):
    model: str = Field(description="the program: an ONNX model, base64")
    name: str | None = Field(None, description="a model name: the program is then the OIP v2 model {graph}.{name}")
    inputs: dict[str, str] | None = Field(None, description="named programs: input name -> program input")
    outputs: dict[str, str] | None = Field(None, description="named programs: output name -> program output")


class RunProgramBody(_Body):
    feeds: list[str] = Field(default_factory=list, description="the fed tensors' names, in the tensors' order")
    fetches: list[str] = Field(default_factory=list)
    targets: list[str] | None = Field(None, description="ops to run (every write the program holds runs)")
    values: list[dict[str, object]] | None = Field(None, description="JSON: the fed tensors")
    checkpoint: str | None = Field(None, description="compute with this named checkpoint's values (read-only: "
                                                     "a program that writes variables is refused)")


def programs_for(state: Any) -> ProgramModels:
    """The app's program plane, over its current data plane."""
    return programs_of(state.plane)


def _programs(request: Request) -> ProgramModels:
    return programs_for(request.app.state)


async def _decode(request: Request, model: type[_Body], tensor_field: str | None) -> tuple[object, list]:  # type: ignore[type-arg]
    s = request.app.state.settings
    return await decode(request, model, s, tensor_field)


@programs_router.post("/{graph}/variables", status_code=201, openapi_extra=body_doc(CreateVariableBody))
async def create_variable(graph: str, request: Request) -> Response:
    body, tensors = await _decode(request, CreateVariableBody, "value")
    if len(tensors) != 1:
        raise InvalidArgument("a new variable takes one tensor, its initial value", code="invalid_tensor")
    described = await run_in_threadpool(lambda: _programs(request).create_variable(
        graph, body.name, tensors[0], trainable=body.trainable))  # type: ignore[attr-defined]
    return json_response({"variable": described}, 201)


@programs_router.post("/{graph}/programs", status_code=201, openapi_extra=body_doc(RegisterProgramBody))
async def register_program(graph: str, request: Request) -> Response:
    body, _ = await _decode(request, RegisterProgramBody, None)
    try:
        data = base64.b64decode(body.model, validate=True)  # type: ignore[attr-defined]
    except (binascii.Error, ValueError):
        raise InvalidArgument("model must be base64 text", code="invalid_program") from None
    programs = _programs(request)
    program_id = await run_in_threadpool(programs.register, graph, data)
    reply: dict[str, Any] = {"id": program_id}
    if body.name is not None:  # type: ignore[attr-defined]
        reply["named"] = await run_in_threadpool(programs.name_program, graph, program_id, body.name,  # type: ignore[attr-defined]
                                                 body.inputs, body.outputs)  # type: ignore[attr-defined]
        reply["model"] = f"{graph}.{body.name}"  # type: ignore[attr-defined]
    return json_response(reply, 201)


@programs_router.get("/{graph}/programs/{name}/onnx")
async def export_program(graph: str, name: str, request: Request) -> Response:
    """A named program as one ONNX model with the current variable values."""
    data = await run_in_threadpool(_programs(request).export_onnx, graph, name)
    return Response(data, media_type="application/x-onnx")


RUN_PATH = "/v1/graphs/{graph}/programs/{program}:run"


async def run_reply(programs: ProgramModels, settings: Any, graph: str, program: str, raw: bytes,
                    content_type: str | None, accept: str) -> Reply:
    """A whole run, from the body's bytes to the answer (``layerserve.server.api.hot`` serves it)."""
    body, tensors = await decode_body(raw, content_type, RunProgramBody, settings, "values")
    if len(body.feeds) != len(tensors):
        raise InvalidArgument(f"{len(body.feeds)} feed names for {len(tensors)} tensors", code="invalid_feeds")
    feeds = dict(zip(body.feeds, tensors, strict=True))
    outputs = await dispatch.cancellable(programs.run, graph, program, feeds, list(body.fetches), body.checkpoint)
    return tensor_reply({}, outputs, "outputs", frame=FRAME_CONTENT_TYPE in accept)


@programs_router.post(RUN_PATH.removeprefix("/v1/graphs"),
                      openapi_extra=body_doc(RunProgramBody, {"values": "tensors"}, frame=True))
async def run_program(graph: str, program: str, request: Request) -> Response:
    """Served by ``layerserve.server.api.hot`` ahead of this router; kept for the schema and mounted apps."""
    settings = request.app.state.settings
    raw = await read_body(request)
    reply = await run_reply(programs_for(request.app.state), settings, graph, program, raw,
                            request.headers.get("content-type"), request.headers.get("accept", ""))
    return reply.response()
