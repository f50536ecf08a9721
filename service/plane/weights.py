"""A layer's weights: read with their version, set all at once (``If-Match``), exported as ONNX."""

from __future__ import annotations

import numpy as np

from layerserve.server.core.layer import Layer
from layerserve.server.errors import Conflict, InvalidArgument
from layerserve.server.layers.base import Signature
from layerserve.server.plane.apply import var_specs
from layerserve.server.plane.graphs import GraphPlane
from layerserve.server.plane.transactions import check_version, layer_gone, retried

__all__ = ["Weights"]


class Weights(GraphPlane):
    """Reading, setting and exporting a layer's weights."""

    def get_weights(self, graph: str, ref: str) -> tuple[list[str], list[np.ndarray]]:
        names, arrays, _ = self.read_weights(graph, ref)
        return names, arrays

    def read_weights(self, graph: str, ref: str) -> tuple[list[str], list[np.ndarray], int]:
        """The weights and the layer version they are."""
        g, layer = self.layer(graph, ref)
        version = g.layer_version(layer)
        try:
            names = layer.weights(g.variables)
        except KeyError:
            raise layer_gone(g, layer) from None
        values = self.values_of(g, layer, names, g.values)
        return names, [values[n] for n in names], version

    @retried
    def set_weights(self, graph: str, ref: str, arrays: list[np.ndarray], if_match: int | None = None) -> Layer:
        g, layer = self.layer(graph, ref)
        with self._mutation(g, layer):
            check_version(g, layer, if_match)
            names = layer.weights(g.variables)
            if len(arrays) != len(names):
                raise Conflict(
                    f'You called `set_weights(weights)` on layer "{layer.name}" with a weight list of length '
                    f"{len(arrays)}, but the layer was expecting {len(names)} weights. Provided weights: "
                    f"{str(arrays)[:50]}...", code="incompatible_weights")
            new = {}
            for name, array in zip(names, arrays):
                var = g.variables[name]
                if tuple(array.shape) != var.shape:
                    raise Conflict(f"Layer weight shape {var.shape} not compatible with provided weight shape "
                                   f"{tuple(array.shape)}", code="incompatible_weights")
                if array.dtype.kind != "f":
                    raise InvalidArgument(f"weights must be float arrays, got {array.dtype.name} for {name}",
                                          code="unsupported_dtype", exception="TypeError")
                new[name] = np.array(array, dtype=var.dtype, copy=True)
            g.set_values(new)
            self._commit(g, variables=list(new))
        return layer

    def export_onnx(self, graph: str, ref: str) -> bytes:
        g, layer = self.layer(graph, ref)
        if not layer.built or layer.build_shape is None or layer.dtype is None:
            raise Conflict(f"layer {layer.name!r} is not built yet: apply or build it first", code="not_built")
        shape = tuple(1 if d is None else d for d in layer.build_shape)
        sig = Signature(layer.dtype, shape, training=False, variables=var_specs(g, layer))
        return self.executor.export(layer, sig, self.values_of(g, layer, list(layer.variables), g.values))
