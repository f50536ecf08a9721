"""The dashboard: the page at ``/ui`` and the read-only JSON it needs beyond the API.

- ``GET /ui`` and ``GET /ui/{asset}``: the page and its assets, from the package's ``static/``
  folder (nothing is fetched from elsewhere; the Content-Security-Policy says so to the
  browser). They hold no state: with ``--token`` the page asks for the token, and every call
  it makes carries it.
- ``GET /v1/graphs/{graph}/layers/{layer}/statistics?bins=30``: min, max, mean, std and a
  histogram of each of the layer's variables, at one layer version.
- ``GET /v1/graphs/{graph}/figures?window=10``: each layer's live figures over the last
  ``window`` seconds (requests/s, p50/p99 latency, errors, dynamic batch sizes).
- ``GET /v1/graphs/{graph}/programs`` and ``GET /v1/graphs/{graph}/programs/{id}``: the
  registered TF1 programs, and one program's outline (feeds, layer calls, variable reads and
  writes, ops, and the edges between them) for drawing it as a graph.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from layerserve.server.api.programs import programs_for
from layerserve.server.api.wire import json_response
from layerserve.server.core.program_outline import outline
from layerserve.server.core.variable_stats import DEFAULT_BINS, check_bins, variable_stats
from layerserve.server.errors import InvalidArgument, NotFound
from layerserve.server.plane import DataPlane
from layerserve.server.traffic import MAX_WINDOW_S, LayerTraffic

__all__ = ["STATIC_TYPES", "layer_figures", "layer_statistics", "ui_router"]

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Everything the page loads comes from this server; no inline script, no framing by other sites.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}


def _assets() -> dict[str, tuple[bytes, str]]:
    """The static folder's files by name, read once (a fixed set: no path from a request reaches the disk)."""
    folder = resources.files("layerserve.server.api").joinpath("static")
    found = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in STATIC_TYPES:
            found[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    return found


_ASSETS = _assets()
ui_router = APIRouter(tags=["dashboard"])


def _asset_response(name: str) -> Response:
    found = _ASSETS.get(name)
    if found is None:
        raise NotFound(f"the dashboard has no file {name[:80]!r}", code="not_found")
    return Response(found[0], media_type=found[1], headers=_PAGE_HEADERS)


@ui_router.get("/ui", include_in_schema=False)
@ui_router.get("/ui/", include_in_schema=False)
async def page() -> Response:
    return _asset_response("index.html")


@ui_router.get("/ui/{asset}", include_in_schema=False)
async def asset(asset: str) -> Response:
    return _asset_response(asset)


def layer_statistics(plane: DataPlane, graph: str, ref: str, bins: int) -> dict[str, Any]:
    """Figures of one snapshot of the values: the version they are is the one reported."""
    g, layer = plane.layer(graph, ref)
    values, version = g.values, g.layer_version(layer)
    names = layer.weights(g.variables)
    stats = [{**g.variables[n].to_json(), **variable_stats(values[n], bins)} for n in names]
    return {"layer": layer.id, "version": version, "bins": bins, "variables": stats}


@ui_router.get("/v1/graphs/{graph}/layers/{layer}/statistics", tags=["dashboard"])
async def statistics(graph: str, layer: str, request: Request, bins: int = Query(DEFAULT_BINS)) -> Response:
    """Each variable of the layer (in ``weights`` order): name, shape, dtype, trainable, size,
    min, max, mean, std over the finite elements, ``nan`` and ``inf`` counts, and
    ``histogram: {edges, counts}`` of ``bins`` equal-width bins (1 to 200)."""
    check_bins(bins)
    body = await run_in_threadpool(layer_statistics, request.app.state.plane, graph, layer, bins)
    return json_response(body, headers={"X-Layer-Version": str(body["version"])})


def layer_figures(plane: DataPlane, traffic: LayerTraffic, graph: str, window_s: float) -> dict[str, Any]:
    g = plane.graph(graph)
    names: dict[str, str | None] = {}
    for layer in list(g.layers.values()):  # a name two layers share addresses neither
        names[layer.name] = None if layer.name in names else layer.id
    ids = {layer_id: layer.name for layer_id, layer in list(g.layers.items())}

    def resolve(ref: str) -> str | None:
        return ref if ref in ids else names.get(ref)

    figures = traffic.figures(graph, window_s, resolve)
    return {"graph": graph, "window_s": window_s,
            "layers": {layer_id: {"name": ids[layer_id], **f.to_json(window_s)} for layer_id, f in figures.items()
                       if layer_id in ids}}


@ui_router.get("/v1/graphs/{graph}/figures", tags=["dashboard"])
async def figures(graph: str, request: Request, window: float = Query(10.0)) -> Response:
    """Live figures of the graph's layers that served requests, by layer id, over the last
    ``window`` seconds (at most 60): ``requests``, ``requests_per_s``, ``p50_ms``, ``p99_ms``,
    ``errors``, ``errors_per_s``, ``batch`` (requests per ONNX Runtime run: mean, max, the
    count of runs by requests carried, and how many of the runs the dynamic batcher made; a
    request served alone is a run of one) and the totals since the server started."""
    if not 0.5 <= window <= MAX_WINDOW_S:
        raise InvalidArgument(f"window must be between 0.5 and {MAX_WINDOW_S:g} seconds, got {window:g}",
                              code="invalid_argument")
    state = request.app.state
    return json_response(await run_in_threadpool(layer_figures, state.plane, state.traffic, graph, window))


def _models(request: Request, graph: str) -> list[tuple[str, Any]]:
    """The graph's registered programs (id, ONNX model), oldest first."""
    return programs_for(request.app.state).registered(graph)


def _layer_label(plane: DataPlane, graph: str) -> Any:
    g = plane.graph(graph)

    def label(ref: str) -> tuple[str, str]:
        layer = g.layers.get(ref) or next((x for x in list(g.layers.values()) if x.name == ref), None)
        return (layer.name, layer.class_name) if layer is not None else (ref, "layer")
    return label


@ui_router.get("/v1/graphs/{graph}/programs", tags=["dashboard"])
async def list_programs(graph: str, request: Request) -> Response:
    """The registered programs, oldest first: ``id``, ``feeds``, ``fetches`` and ``n_nodes``."""
    def listing() -> list[dict[str, Any]]:
        label = _layer_label(request.app.state.plane, graph)
        out = []
        for program_id, model in _models(request, graph):
            summary = outline(model, label)
            out.append({"id": program_id, "feeds": summary["feeds"], "fetches": summary["fetches"],
                        "n_nodes": summary["n_nodes"]})
        return out
    return json_response({"programs": await run_in_threadpool(listing)})


@ui_router.get("/v1/graphs/{graph}/programs/{program}", tags=["dashboard"])
async def describe_program(graph: str, program: str, request: Request) -> Response:
    """One program's outline: ``feeds``, ``fetches``, ``n_nodes``, ``truncated`` and ``nodes``
    (``name``, ``op``, ``kind``: placeholder / layer / variable / op, ``inputs``: the nodes it
    reads from; a layer call also ``layer``, ``label``, ``class``; a variable op ``variable``,
    ``access``: read / assign / update)."""
    def described() -> dict[str, Any]:
        found = dict(_models(request, graph)).get(program)
        if found is None:
            raise NotFound(f"graph {graph!r} has no program {program[:80]!r}", code="program_not_found")
        return {"id": program, **outline(found, _layer_label(request.app.state.plane, graph))}
    return json_response(await run_in_threadpool(described))
