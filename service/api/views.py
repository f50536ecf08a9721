"""Response views: the JSON a route answers with for a layer, a graph's layers, its variables."""

from __future__ import annotations

from typing import Any

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer
from layerserve.server.plane import DataPlane

__all__ = ["describe", "global_variables", "layer_view", "list_layers"]


def describe(plane: DataPlane, graph: str, ref: str) -> dict[str, Any]:
    g, layer = plane.layer(graph, ref)
    return layer_view(plane, g, layer)


def list_layers(plane: DataPlane, graph: str) -> list[dict[str, Any]]:
    g = plane.graph(graph)
    return [layer_view(plane, g, layer) for layer in list(g.layers.values())]


def global_variables(plane: DataPlane, graph: str) -> list[dict[str, Any]]:
    g = plane.graph(graph)
    return [v.to_json() for v in list(g.variables.values())]


def layer_view(plane: DataPlane, g: Graph, layer: Layer) -> dict[str, Any]:
    trainable, frozen = layer.variable_lists(g.variables)
    spec = layer.input_spec()
    spec_json = [s.to_json() for s in spec] if isinstance(spec, list) else None if spec is None else spec.to_json()
    return {
        "id": layer.id, "graph": g.name, "class": layer.class_name, "name": layer.name,
        "scope_name": layer.scope, "dtype": layer.dtype, "trainable": layer.trainable, "built": layer.built,
        "input_spec": spec_json,
        "build_input_shape": None if layer.build_shape is None else list(layer.build_shape),
        "config": {"name": layer.name, "trainable": layer.trainable, "dtype": layer.dtype,
                   **layer.kind.get_config(layer.dtype, layer.build_shape)},
        "variables": g.describe_variables(trainable + frozen),
        "trainable_variables": trainable, "non_trainable_variables": frozen,
        "count_params": layer.count_params(g.variables),
        "n_updates": len(layer.visible_updates()), "n_losses": len(layer.losses) + len(layer.weight_losses)
        + len(layer.kind.weight_loss_outputs()),
        "providers": plane.active_providers(), "batching": layer.batching,
        "version": g.layer_version(layer),
    }
