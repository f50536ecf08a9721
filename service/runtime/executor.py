"""Runs a layer's compiled graph on ONNX Runtime with its variables as inputs.

Variables are graph inputs fed from the values the server keeps resident, not baked-in
initializers: a ``set_weights`` swaps one reference and the next run sees the new values,
with no session rebuild and no torn reads (see BENCHMARKS.md for the measured trade-off).
With ``io_binding`` those feeds are also kept as OrtValues on the device and runs go through
IOBinding (binding.py); that is the default when CUDA leads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import numpy_helper

from layerserve.server.core.layer import Layer
from layerserve.server.errors import IncompatibleInput, LayerServeError
from layerserve.server.layers.base import LayerKind, Signature
from layerserve.server.runtime.batching import Batcher, BatchPolicy, run_padded
from layerserve.server.runtime.binding import ResidentVariables, run_bound
from layerserve.server.runtime.cancel import guarded_run
from layerserve.server.runtime.compiler import INPUT, OUTPUT, compile_layer, input_name
from layerserve.server.runtime.model_check import check_loadable, clean_message
from layerserve.server.runtime.sessions import CompiledLayer, SessionCache
from layerserve.server.runtime.vetting import ModelVetting

__all__ = ["Executor"]


class Executor:
    def __init__(self, sessions: SessionCache, batch_defaults: BatchPolicy | None = None,
                 batcher: Batcher | None = None, *, io_binding: bool = False,
                 vetting: ModelVetting | None = None) -> None:
        self.sessions = sessions
        self.vetting = vetting or ModelVetting(sessions)
        self.batch_defaults = batch_defaults or BatchPolicy()
        self.batcher = batcher or Batcher()
        # With IOBinding the variables also live as OrtValues on the leading provider's device.
        providers = sessions.providers
        self.resident = ResidentVariables(providers.device, providers.device_id) if io_binding else None
        self._cost_s: dict[str, float] = {}  # layer id -> recent run time (moving average)
        # layer key -> (the variable arrays the feeds were derived from, the feeds)
        self._feeds: dict[str, tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()
        # layer id -> (session, output names) of its unconditional-loss model (custom layers)
        self._loss_sessions: dict[str, tuple[Any, list[str]]] = {}

    def run(self, layer: Layer, sig: Signature, x: np.ndarray, variables: dict[str, np.ndarray], *,
            batch: bool = True, more_inputs: Sequence[np.ndarray] = ()) -> dict[str, Any]:
        """Run the layer. Inference applies of batch-separable layers go through the batcher
        when the layer batches (``batch=False``: run here and now); batched or not, they follow
        its padding rule, so a result never depends on batching or concurrency. ``more_inputs``:
        the other inputs of a layer of several inputs (custom layers)."""
        try:
            return self._run(layer, sig, x, variables, batch=batch, more_inputs=more_inputs)
        except Exception as exc:
            if not layer.kind.user_defined or isinstance(exc, LayerServeError):
                raise
            shapes = [list(x.shape), *(list(m.shape) for m in more_inputs)]
            raise IncompatibleInput(f"layer {layer.name!r} could not compute its graph on inputs of shape "
                                    f"{shapes}: {clean_message(str(exc))}", code="graph_failed") from None

    def _run(self, layer: Layer, sig: Signature, x: np.ndarray, variables: dict[str, np.ndarray], *,
             batch: bool, more_inputs: Sequence[np.ndarray]) -> dict[str, Any]:
        compiled = self.sessions.get(layer.key, layer.kind, sig)
        weights = self.variable_feeds(layer, variables)
        policy = self.policy(layer)
        if self._batchable(layer, sig, compiled, x) and not more_inputs:
            y = self._run_batched(layer, sig, compiled, weights, x, policy, batch=batch and policy.enabled)
            return {OUTPUT: y}
        feeds = dict(layer.kind.extra_feeds(tuple(x.shape), sig.dtype, training=sig.training))
        feeds[INPUT] = x
        feeds.update({input_name(k): more for k, more in enumerate(more_inputs, start=1)})
        started = time.perf_counter()
        outputs = self._execute(compiled, layer.key, weights, feeds)
        self._note_cost(layer.key, time.perf_counter() - started)
        return dict(zip(compiled.output_names, outputs, strict=False))

    def _execute(self, compiled: CompiledLayer, layer_key: str, weights: dict[str, np.ndarray],
                 host: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One session run: variables fed from the host, or bound where they reside (IOBinding)."""
        if self.resident is None:
            return compiled.run({**weights, **host})
        device_values = self.resident.values(layer_key, weights)
        return run_bound(compiled, device_values, host, self.resident.device, self.resident.device_id)

    def policy(self, layer: Layer) -> BatchPolicy:
        return self.batch_defaults.with_overrides(layer.batching)

    @staticmethod
    def _batchable(layer: Layer, sig: Signature, compiled: CompiledLayer, x: np.ndarray) -> bool:
        return (not sig.training and layer.kind.batch_separable and not layer.kind.extra_inputs
                and compiled.output_names == [OUTPUT] and x.ndim >= 1)

    def _run_batched(self, layer: Layer, sig: Signature, compiled: CompiledLayer, weights: dict[str, np.ndarray],
                     x: np.ndarray, policy: BatchPolicy, *, batch: bool) -> np.ndarray:
        def execute(xb: np.ndarray) -> np.ndarray:
            started = time.perf_counter()
            y = self._execute(compiled, layer.key, weights, {INPUT: xb})[0]
            self._note_cost(layer.key, time.perf_counter() - started)
            return y

        if not batch:
            return run_padded(execute, x)
        # One queue per layer, signature and variable version: a batch never mixes weights.
        key = (layer.key, sig.dtype, sig.shape[1:], id(weights))
        return self.batcher.run(key, x, policy, execute, anchor=weights)

    def _note_cost(self, layer_id: str, seconds: float) -> None:
        previous = self._cost_s.get(layer_id)
        self._cost_s[layer_id] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def cost_s(self, layer_id: str) -> float | None:
        """The layer's recent run time in seconds (None before its first run)."""
        return self._cost_s.get(layer_id)

    def weight_losses(self, layer: Layer, variables: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """(output name, value) per unconditional loss output, on the given variable values."""
        if not layer.built or not layer.variables:
            return []
        with self._lock:
            cached = self._loss_sessions.get(layer.key)
        if cached is None:
            built = layer.kind.weight_loss_model()
            if built is None:
                return []
            cached = (self.sessions.session(built[0].SerializeToString(), uploaded=True), built[1])
            with self._lock:
                self._loss_sessions[layer.key] = cached
        session, names = cached
        feeds = {layer.short_name(n): variables[n] for n in layer.variables}
        values = guarded_run(lambda options: session.run(names, feeds, options))
        return [(name, np.asarray(v).reshape(())) for name, v in zip(names, values, strict=True)]

    def check_loadable(self, models: list[bytes]) -> None:
        check_loadable(self.sessions, models)

    def user_kind(self, cls: type[LayerKind], config: dict[str, Any]) -> LayerKind:
        """A user-defined kind (an uploaded model), validated and loaded once in a child
        process within the validation deadline (see ``runtime.vetting``)."""
        return self.vetting.kind(cls, config)

    def variable_feeds(self, layer: Layer, variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The kind's graph-layout inputs, derived once per version of the variable values."""
        arrays = tuple(variables[n] for n in layer.variables)
        with self._lock:
            cached = self._feeds.get(layer.key)
        if cached is not None and len(cached[0]) == len(arrays) and all(a is b for a, b in zip(cached[0], arrays, strict=False)):
            return cached[1]
        feeds = layer.kind.runtime_feeds({layer.short_name(n): variables[n] for n in layer.variables})
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
            self._loss_sessions.pop(layer_key, None)
        self._cost_s.pop(layer_key, None)
        if self.resident is not None:
            self.resident.forget(layer_key)
        self.sessions.evict_layer(layer_key)
