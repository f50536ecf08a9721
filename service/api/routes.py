"""The route table: every route's template, compiled once, matched once per request.

``RouteTable.from_routes`` reads the templates of the application's routes and of the routers
``create_app`` includes (a route declared on any of them is in the table without further
registration) and compiles them into a tree of path
segments. The outermost middleware matches each request once (``match_request``) and keeps the
result in the scope: the auth check reads its graph, the limits check its names and whether it
needs the state, the fast handlers (``hot.py``) dispatch on its template, and the metrics label
by it. Parameters come from the raw path, segment by segment, so a name holding ``/`` (sent as
``%2F``) is one parameter, refused as a bad name rather than a missing route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.routing import BaseRoute
from starlette.types import Scope

__all__ = ["MATCH_KEY", "RouteMatch", "RouteTable", "match_of", "match_request", "request_header", "split_model"]

MATCH_KEY = "layerserve.route"  # the scope key holding the request's RouteMatch (or None)
_PARAM, _REST = "{}", "{path}"
_MATCHES_KEPT = 4096


@dataclass(frozen=True)
class RouteMatch:
    """A request's route: its template (``path``, as Starlette's routes name it) and parameters
    (shared by the requests of one path: read only)."""

    path: str
    params: dict[str, str]
    methods: frozenset[str]

    @property
    def graph(self) -> str | None:
        """The graph the request addresses: ``{graph}``, or the graph part of an OIP ``{model}``."""
        if "graph" in self.params:
            return self.params["graph"]
        if "model" in self.params:
            return split_model(self.params["model"])[0]
        return None


def split_model(model: str) -> tuple[str, str]:
    """An OIP model name: ``layer`` -> (default, layer); ``graph.layer`` -> (graph, layer)."""
    graph, dot, layer = model.partition(".")
    return (graph, layer) if dot else ("default", model)


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    # parameters at this level: name, literal suffix in the same segment ("{program}:run"), what follows
    params: list[tuple[str, str, _Node]] = field(default_factory=list)
    rest: str | None = None  # a ``{name:path}`` parameter: the rest of the path
    route: tuple[str, frozenset[str]] | None = None  # the template ending here, and its methods


class RouteTable:
    def __init__(self, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        """``routes``: (template, methods) pairs, e.g. ("/v1/graphs/{graph}/layers", {"GET", "POST"})."""
        self._root = _Node()
        self._matches: dict[bytes, RouteMatch | None] = {}
        for template, methods in routes:
            self._add(template, frozenset(methods))

    @classmethod
    def from_routes(cls, routes: Iterable[BaseRoute]) -> RouteTable:
        """The table of Starlette/FastAPI routes (an ``APIRouter``'s routes carry its prefix)."""
        found = ((getattr(r, "path", None), getattr(r, "methods", None) or {"GET"}) for r in routes)
        return cls((path, methods) for path, methods in found if isinstance(path, str))

    def _add(self, template: str, methods: frozenset[str]) -> None:
        node = self._root
        for segment in template.strip("/").split("/") if template != "/" else []:
            if segment.startswith("{") and segment.endswith(":path}"):
                node.rest = segment[1:-6]
                node = node.literal.setdefault(_REST, _Node())
                break
            if segment.startswith("{") and "}" in segment:
                name, _, suffix = segment[1:].partition("}")
                node = self._param_child(node, name.split(":")[0], suffix)
            else:
                node = node.literal.setdefault(segment, _Node())
        known = node.route[1] if node.route is not None else frozenset()
        node.route = (template, known | methods)

    @staticmethod
    def _param_child(node: _Node, name: str, suffix: str) -> _Node:
        for known, known_suffix, child in node.params:
            if known == name and known_suffix == suffix:
                return child
        child = _Node()
        node.params.append((name, suffix, child))
        node.params.sort(key=lambda entry: -len(entry[1]))  # the longest suffix is tried first
        return child

    def match(self, raw_path: bytes) -> RouteMatch | None:
        """The route of ``raw_path`` (percent-encoded, as sent), or None. Clients repeat their
        paths (one layer's applies), so matches are kept by path, ``_MATCHES_KEPT`` at most: the
        same path gets the same ``RouteMatch``, whose ``params`` are read, never changed."""
        try:
            return self._matches[raw_path]
        except KeyError:
            pass
        segments = raw_path.split(b"/")[1:] if raw_path != b"/" else []
        found = self._walk(self._root, segments, 0, {})
        if len(self._matches) >= _MATCHES_KEPT:
            self._matches.clear()  # any path may come: the memory stays bounded
        self._matches[raw_path] = found
        return found

    def _walk(self, node: _Node, segments: list[bytes], at: int, params: dict[str, str]) -> RouteMatch | None:
        if at == len(segments):
            found = node.route
            return RouteMatch(found[0], dict(params), found[1]) if found else None
        text = _decoded(segments[at])
        child = node.literal.get(text)
        if child is not None:
            hit = self._walk(child, segments, at + 1, params)
            if hit is not None:
                return hit
        for name, suffix, after in node.params:
            if len(text) > len(suffix) and text.endswith(suffix):
                value = text[:len(text) - len(suffix)]
                hit = self._walk(after, segments, at + 1, {**params, name: value})
                if hit is not None:
                    return hit
        if node.rest is not None:
            rest = "/".join(_decoded(s) for s in segments[at:])
            found = node.literal[_REST].route
            return RouteMatch(found[0], {**params, node.rest: rest}, found[1]) if found and rest else None
        return None


def _decoded(segment: bytes) -> str:
    if b"%" not in segment:
        return segment.decode("utf-8", "replace")
    return unquote_to_bytes(segment).decode("utf-8", "replace")


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (ASGI names are lower case), as Starlette's ``get``."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def match_request(table: RouteTable, scope: Scope) -> RouteMatch | None:
    """Match once and keep the result in the scope; under a ``root_path`` nothing matches."""
    found = None if scope.get("root_path") else table.match(scope.get("raw_path") or scope["path"].encode())
    scope[MATCH_KEY] = found
    return found


def match_of(scope: Scope) -> RouteMatch | None:
    found: Any = scope.get(MATCH_KEY)
    return found if isinstance(found, RouteMatch) else None
