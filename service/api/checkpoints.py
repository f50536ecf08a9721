"""Named checkpoints and the version history over HTTP, ``/v1/graphs/{graph}/checkpoints`` and
``/v1/graphs/{graph}/versions``.

A checkpoint travels as TensorFlow's two files: downloaded as a tar of ``<name>.index`` and
``<name>.data-00000-of-00001`` (or one of them with ``?file=index|data``), uploaded as a tar
holding one file of each kind (any prefix), e.g. ``tar cf - model-3.index model-3.data-*``.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from layerserve.checkpoint import DATA_SUFFIX, INDEX_SUFFIX
from layerserve.server.api.wire import _Body, body_doc, decode, json_response, read_body
from layerserve.server.errors import BadRequest, InvalidArgument, UnsupportedMediaType
from layerserve.server.plane.checkpoints import Checkpoints

__all__ = ["GRAPH_VERSION_HEADER", "checkpoint_router", "pack_checkpoint", "unpack_checkpoint"]

GRAPH_VERSION_HEADER = "X-Graph-Version"
TAR_TYPE = "application/x-tar"
checkpoint_router = APIRouter(prefix="/v1/graphs/{graph}", tags=["checkpoints"])


class CheckpointBody(_Body):
    name: str


def _service(request: Request) -> Checkpoints:
    return request.app.state.checkpoints  # type: ignore[no-any-return]


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidArgument(f"If-Match must be a graph version as given in {GRAPH_VERSION_HEADER}, got "
                              f"{raw[:40]!r}", code="invalid_if_match")
    return int(text)


def pack_checkpoint(name: str, index: bytes, data: bytes) -> bytes:
    """A tar of the two files, named as TensorFlow names them for prefix ``name``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for suffix, content in ((INDEX_SUFFIX, index), (DATA_SUFFIX, data)):
            info = tarfile.TarInfo(name + suffix)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def unpack_checkpoint(raw: bytes) -> tuple[bytes, bytes]:
    """``(index, data)`` from an uploaded tar: exactly one regular file of each kind."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                kind = "index" if member.name.endswith(INDEX_SUFFIX) else "data" if member.name.endswith(
                    DATA_SUFFIX) else None
                if kind is None or not member.isfile():
                    raise InvalidArgument(f"the upload holds {member.name[:200]!r}: only one <prefix>{INDEX_SUFFIX} "
                                          f"and one <prefix>{DATA_SUFFIX} file are accepted", code="invalid_checkpoint")
                if kind in found:
                    raise InvalidArgument(f"the upload holds two {kind} files", code="invalid_checkpoint")
                handle = tar.extractfile(member)
                found[kind] = b"" if handle is None else handle.read()
    except (tarfile.TarError, EOFError) as exc:
        raise BadRequest(f"the upload is not a readable tar archive: {exc}", code="invalid_checkpoint") from None
    if set(found) != {"index", "data"}:
        raise InvalidArgument(f"the upload needs a {INDEX_SUFFIX} and a {DATA_SUFFIX} file, it holds "
                              f"{sorted(found) or 'neither'}", code="invalid_checkpoint")
    return found["index"], found["data"]


@checkpoint_router.post("/checkpoints", status_code=201, openapi_extra=body_doc(CheckpointBody))
async def create_checkpoint(graph: str, request: Request) -> Response:
    """Snapshot every variable of the graph under a new name."""
    s = request.app.state.settings
    body, _ = await decode(request, CheckpointBody, s.max_body_bytes, s.max_tensor_elements)
    meta = await run_in_threadpool(_service(request).create, graph, body.name)
    return json_response(_summary(meta), 201)


@checkpoint_router.get("/checkpoints")
async def list_checkpoints(graph: str, request: Request) -> Response:
    return json_response({"checkpoints": await run_in_threadpool(_service(request).listing, graph)})


@checkpoint_router.get("/checkpoints/{name}")
async def describe_checkpoint(graph: str, name: str, request: Request) -> Response:
    return json_response(await run_in_threadpool(_service(request).describe, graph, name))


@checkpoint_router.get("/checkpoints/{name}/files")
async def download_checkpoint(graph: str, name: str, request: Request, file: str | None = None) -> Response:
    """TensorFlow's files: a tar of both, or one of them (``?file=index`` / ``?file=data``)."""
    if file not in (None, "index", "data"):
        raise InvalidArgument("file is 'index' or 'data'", code="invalid_argument")
    index, data = await run_in_threadpool(_service(request).download, graph, name)
    if file is not None:
        return Response(index if file == "index" else data, media_type="application/octet-stream")
    return Response(await run_in_threadpool(pack_checkpoint, name, index, data), media_type=TAR_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}.tar"'})


@checkpoint_router.put("/checkpoints/{name}", status_code=201)
async def upload_checkpoint(graph: str, name: str, request: Request) -> Response:
    """A checkpoint TensorFlow wrote, as a tar of its ``.index`` and ``.data-00000-of-00001``."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
    if content_type not in (TAR_TYPE, "application/octet-stream"):
        raise UnsupportedMediaType(f"upload a checkpoint as {TAR_TYPE} (a tar of its two files), not "
                                   f"{content_type or 'no content type'}")
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    index, data = await run_in_threadpool(unpack_checkpoint, raw)
    meta = await run_in_threadpool(_service(request).upload, graph, name, index, data)
    return json_response(_summary(meta), 201)


@checkpoint_router.delete("/checkpoints/{name}", status_code=204)
async def delete_checkpoint(graph: str, name: str, request: Request) -> Response:
    await run_in_threadpool(_service(request).delete, graph, name)
    return Response(status_code=204)


@checkpoint_router.post("/checkpoints/{name}:restore")
async def restore_checkpoint(graph: str, name: str, request: Request) -> Response:
    """Every variable of the graph from the checkpoint, in one commit (``If-Match``: a graph version)."""
    restored = await run_in_threadpool(_service(request).restore, graph, name, _if_match(request))
    return json_response(restored, headers={GRAPH_VERSION_HEADER: str(restored["version"])})


@checkpoint_router.get("/versions")
async def graph_versions(graph: str, request: Request) -> Response:
    """The graph's version history: version, time, cause and variables of each retained commit."""
    history = await run_in_threadpool(_service(request).versions, graph)
    return json_response(history, headers={GRAPH_VERSION_HEADER: str(history["version"])})


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "variables": meta.get("variables", [])}
