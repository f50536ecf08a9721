"""Runs a layer's compiled graph on ONNX Runtime with its variables as inputs.

Variables are graph inputs fed from the values the server keeps resident, not baked-in
initializers: a ``set_weights`` swaps one reference and the next run sees the new values,
with no session rebuild and no torn reads (see BENCHMARKS.md for the measured trade-off).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from onnx import numpy_helper

from service.core.layer import Layer, short_name
from service.layers.base import Signature
from service.runtime.compiler import INPUT, compile_layer
from service.runtime.sessions import SessionCache

__all__ = ["Executor"]


class Executor:
    def __init__(self, sessions: SessionCache) -> None:
        self.sessions = sessions
        # layer key -> (the variable arrays the feeds were derived from, the feeds)
        self._feeds: dict[str, tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()

    def run(self, layer: Layer, sig: Signature, x: np.ndarray, variables: dict[str, np.ndarray]) -> dict[str, Any]:
        compiled = self.sessions.get(layer.key, layer.kind, sig)
        feeds = dict(self.variable_feeds(layer, variables))
        feeds.update(layer.kind.extra_feeds(tuple(x.shape), sig.dtype, sig.training))
        feeds[INPUT] = x
        return dict(zip(compiled.output_names, compiled.run(feeds)))

    def variable_feeds(self, layer: Layer, variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The kind's graph-layout inputs, derived once per version of the variable values."""
        arrays = tuple(variables[n] for n in layer.variables)
        with self._lock:
            cached = self._feeds.get(layer.key)
        if cached is not None and len(cached[0]) == len(arrays) and all(a is b for a, b in zip(cached[0], arrays)):
            return cached[1]
        feeds = layer.kind.runtime_feeds({short_name(n): variables[n] for n in layer.variables})
        with self._lock:
            self._feeds[layer.key] = (arrays, feeds)
        return feeds

    def export(self, layer: Layer, sig: Signature, variables: dict[str, np.ndarray]) -> bytes:
        """A standalone model: the inference graph with the current weights as initializers."""
        model, _ = compile_layer(layer.kind, sig, name=layer.name)
        feeds = self.variable_feeds(layer, variables)
        graph = model.graph
        kept = [i for i in graph.input if i.name not in feeds]
        del graph.input[:]
        graph.input.extend(kept)
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name) for name, v in feeds.items())
        return bytes(model.SerializeToString())

    def forget(self, layer_key: str) -> None:
        with self._lock:
            self._feeds.pop(layer_key, None)
        self.sessions.evict_layer(layer_key)
