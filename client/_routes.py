"""Every route the client calls, built and parsed without I/O.

``Layer``, ``Connection`` and ``AsyncConnection`` only send what these functions build
(``Request``) and read answers with the parsers below, so the sync and async paths share every
path, body and parse.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np

from layerserve._core import Request, Result, layer_path

__all__ = [
    "apply", "build", "compute_output_shape", "create_layer", "delete_layer", "describe", "get_weights",
    "global_variables", "list_layers", "losses", "losses_for", "outputs", "patch_layer", "run_graph_updates",
    "run_updates", "scalars", "set_weights", "updated_variables", "updates", "updates_for", "updates_of",
    "variable_value",
]


# ---- graph routes --------------------------------------------------------------------------
def create_layer(graph: str, body: dict[str, Any]) -> Request:
    return Request("POST", f"/v1/graphs/{quote(graph, safe='')}/layers", body)


def list_layers(graph: str) -> Request:
    return Request("GET", f"/v1/graphs/{quote(graph, safe='')}/layers")


def global_variables(graph: str) -> Request:
    return Request("GET", f"/v1/graphs/{quote(graph, safe='')}/variables")


def variable_value(graph: str, name: str) -> Request:
    return Request("GET", f"/v1/graphs/{quote(graph, safe='')}/variables/{name}", accept_tensors=True,
                   tensor_key="values")


def run_graph_updates(graph: str) -> Request:
    return Request("POST", f"/v1/graphs/{quote(graph, safe='')}/updates:run", {"inputs": None})


# ---- layer routes --------------------------------------------------------------------------
def describe(graph: str, layer: str) -> Request:
    return Request("GET", layer_path(graph, layer))


def patch_layer(graph: str, layer: str, body: dict[str, Any]) -> Request:
    return Request("PATCH", layer_path(graph, layer), body)


def delete_layer(graph: str, layer: str) -> Request:
    return Request("DELETE", layer_path(graph, layer))


def build(graph: str, layer: str, input_shape: Any, dtype: str | None) -> Request:
    return Request("POST", layer_path(graph, layer, "/build"), {"input_shape": input_shape, "dtype": dtype})


def apply(graph: str, layer: str, inputs: list[np.ndarray], *, training: bool | None) -> Request:
    return Request("POST", layer_path(graph, layer, "/apply"), {"training": training}, inputs, accept_tensors=True)


def compute_output_shape(graph: str, layer: str, input_shape: list[int | None]) -> Request:
    return Request("POST", layer_path(graph, layer, "/compute_output_shape"), {"input_shape": input_shape})


def get_weights(graph: str, layer: str) -> Request:
    return Request("GET", layer_path(graph, layer, "/weights"), accept_tensors=True, tensor_key="weights")


def set_weights(graph: str, layer: str, arrays: list[np.ndarray]) -> Request:
    return Request("PUT", layer_path(graph, layer, "/weights"), {}, arrays, request_key="weights")


def losses(graph: str, layer: str) -> Request:
    return Request("GET", layer_path(graph, layer, "/losses"))


def losses_for(graph: str, layer: str, refs: list[str] | None) -> Request:
    return Request("POST", layer_path(graph, layer, "/losses:for"), {"inputs": refs})


def updates(graph: str, layer: str) -> Request:
    return Request("GET", layer_path(graph, layer, "/updates"))


def updates_for(graph: str, layer: str, refs: list[str] | None) -> Request:
    return Request("POST", layer_path(graph, layer, "/updates:for"), {"inputs": refs})


def run_updates(graph: str, layer: str, refs: list[str] | None) -> Request:
    return Request("POST", layer_path(graph, layer, "/updates:run"), {"inputs": refs})


# ---- parsing answers -----------------------------------------------------------------------
def outputs(result: Result) -> Any:
    """An apply's answer: one array, or a list of them for a layer of several outputs."""
    arrays = [t.copy() for t in result.tensors]
    return arrays[0] if len(arrays) == 1 else arrays


def scalars(result: Result) -> list[np.generic]:
    """Losses as numpy scalars of their dtype (TF gives tensors of the layer's dtype)."""
    return [np.dtype(x.get("dtype", "float32")).type(x["value"]) for x in result.body["losses"]]


def updates_of(result: Result) -> list[tuple[str, np.ndarray, str | None]]:
    """Pending updates: (variable, the value it would take, the input reference)."""
    out = []
    for u in result.body["updates"]:
        v = u["value"]
        out.append((u["variable"], np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"]), u.get("input")))
    return out


def updated_variables(result: Result) -> list[str]:
    return list(result.body["updated_variables"])
