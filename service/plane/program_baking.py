"""Programs that only read their weights run on a session with the weights baked in as initializers.

ONNX Runtime prepacks constant weights (a MatMul's right operand, a Conv's filter) once per session;
fed as inputs they are repacked on every run. A program without writes gets a second session per
version of the variables it reads; a program whose weights keep changing (more than ``MAX_REBAKES``
new versions) goes back to feeding them, so a training loop never recompiles per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from layerserve.server.core.graph import Graph
from layerserve.server.core.program import Composed
from layerserve.server.runtime.sessions import CompiledLayer, SessionCache

__all__ = ["MAX_REBAKES", "Baked", "bake", "initial_value", "resident_inputs", "weight_versions"]

MAX_REBAKES = 3


@dataclass
class Baked:
    versions: tuple[int, ...]
    session: CompiledLayer


def read_variables(g: Graph, composed: Composed) -> list[str]:
    """Every variable the composed program reads, directly or through a layer's graph inputs."""
    names = list(composed.variable_inputs.values())
    for layer_id in dict.fromkeys(layer_id for layer_id, _ in composed.layer_inputs.values()):
        names += g.layers[layer_id].variables
    return names


def weight_versions(g: Graph, composed: Composed) -> tuple[int, ...]:
    return tuple(g.versions.get(f"V:{name}", 0) for name in read_variables(g, composed))


def resident_inputs(g: Graph, composed: Composed, values: Any, executor: Any) -> dict[str, np.ndarray]:
    """The graph inputs fed from resident values: variables, and layers' variables in their graph layout."""
    out = {name: values[variable] for name, variable in composed.variable_inputs.items()}
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for name, (layer_id, feed) in composed.layer_inputs.items():
        if layer_id not in by_layer:
            by_layer[layer_id] = executor.variable_feeds(g.layers[layer_id], values)
        out[name] = by_layer[layer_id][feed]
    return out


def bake(sessions: SessionCache, composed: Composed, resident: dict[str, np.ndarray],
         output_names: list[str]) -> CompiledLayer:
    model = onnx.ModelProto()
    model.CopyFrom(composed.model)
    kept = [i for i in model.graph.input if i.name not in resident]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in resident.items())
    return CompiledLayer(sessions.session(model.SerializeToString()), output_names)


def initial_value(g: Graph, variable: str, values: Any) -> np.ndarray:
    """A layer variable's initial value from its layer's initializer (a random one drawn again, as TF
    does); a variable no layer owns keeps its value (its creator sent the initial value itself)."""
    for layer in g.owners(variable):
        if not layer.built or layer.build_shape is None or layer.dtype is None:
            continue
        short = layer.short_name(variable)
        try:
            specs = layer.kind.build_variables([layer.build_shape], layer.dtype)
        except Exception:  # a kind that needs more than its first input's shape: keep the value
            continue
        for spec in specs:
            if spec.name == short:
                return np.asarray(spec.initial_value(), dtype=g.variables[variable].dtype)
    return np.asarray(values[variable])
