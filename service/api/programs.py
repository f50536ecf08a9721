"""Programs and graph variables over HTTP: ``/v1/graphs/{graph}/programs`` and ``.../variables``."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from layerserve.server.api.wire import _Body, body_doc, decode, json_response, tensor_response
from layerserve.server.errors import InvalidArgument
from layerserve.server.plane.programs import ProgramPlane

__all__ = ["programs_router"]

programs_router = APIRouter(prefix="/v1/graphs", tags=["programs"])


class CreateVariableBody(_Body):
    name: str
    trainable: bool = True
    value: list[dict[str, object]] | None = Field(None, description="JSON: the initial value as one tensor")


class RegisterProgramBody(_Body):
    model: str = Field(description="the program: an ONNX model, base64")


class RunProgramBody(_Body):
    feeds: list[str] = Field(default_factory=list, description="the fed tensors' names, in the tensors' order")
    fetches: list[str] = Field(default_factory=list)
    targets: list[str] | None = Field(None, description="ops to run (every write the program holds runs)")
    values: list[dict[str, object]] | None = Field(None, description="JSON: the fed tensors")
    checkpoint: str | None = Field(None, description="compute with this named checkpoint's values (read-only: "
                                                     "a program that writes variables is refused)")


def _programs(request: Request) -> ProgramPlane:
    plane = request.app.state.plane
    found = getattr(request.app.state, "programs", None)
    if found is None or found.plane is not plane:
        found = ProgramPlane(plane)
        request.app.state.programs = found
    return found  # type: ignore[no-any-return]


async def _decode(request: Request, model: type[_Body], tensor_field: str | None) -> tuple[object, list]:  # type: ignore[type-arg]
    s = request.app.state.settings
    return await decode(request, model, s.max_body_bytes, s.max_tensor_elements, tensor_field)


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
    program_id = await run_in_threadpool(_programs(request).register, graph, data)
    return json_response({"id": program_id}, 201)


@programs_router.post("/{graph}/programs/{program}:run", openapi_extra=body_doc(RunProgramBody, {"values": "tensors"},
                                                                                  frame=True))
async def run_program(graph: str, program: str, request: Request) -> Response:
    body, tensors = await _decode(request, RunProgramBody, "values")
    names = body.feeds  # type: ignore[attr-defined]
    if len(names) != len(tensors):
        raise InvalidArgument(f"{len(names)} feed names for {len(tensors)} tensors", code="invalid_feeds")
    feeds = dict(zip(names, tensors, strict=True))
    outputs = await run_in_threadpool(_programs(request).run, graph, program, feeds,
                                      list(body.fetches), body.checkpoint)  # type: ignore[attr-defined]
    return tensor_response(request, {}, outputs, "outputs")
