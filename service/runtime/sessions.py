"""ONNX Runtime sessions, compiled once per (layer, input signature) and cached (LRU)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as InvalidArgumentError

from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.base import LayerKind, Signature
from layerserve.server.runtime.cancel import guarded_run
from layerserve.server.runtime.compiler import compile_layer
from layerserve.server.runtime.providers import ProviderSelection

__all__ = ["CompiledLayer", "SessionCache"]


@dataclass
class CompiledLayer:
    session: ort.InferenceSession
    output_names: list[str]
    nbytes: int = 0  # the model it was made from: what the session holds besides its runs' buffers

    def run(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        try:
            return guarded_run(lambda options: self.session.run(self.output_names, feeds, options))  # type: ignore[no-any-return]
        except InvalidArgumentError as exc:
            # ONNX Runtime refused these inputs (e.g. a shape its kernels cannot take): the
            # request's fault, so a 422 that says what ORT said, not a 500.
            raise InvalidArgument(f"ONNX Runtime rejected the inputs: {exc}", code="execution_rejected") from None


class SessionCache:
    """Sessions by (layer, signature), least recently used evicted past ``max_sessions`` or past
    ``max_bytes`` of models. Sessions run without ONNX Runtime's CPU memory arena (unless
    ``cpu_arena``): an arena keeps the peak of every input shape a session has seen, so a
    cache of sessions would pin the memory of the largest requests for as long as they stay."""

    def __init__(self, providers: ProviderSelection, max_sessions: int = 256, intra_op_threads: int = 0,
                 max_bytes: int = 1 << 30, *, cpu_arena: bool = False) -> None:
        self.providers = providers
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.cpu_arena = cpu_arena
        self.intra_op_threads = intra_op_threads
        self.nbytes = 0
        self._sessions: OrderedDict[tuple[Any, ...], CompiledLayer] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, layer_id: str, kind: LayerKind, sig: Signature) -> CompiledLayer:
        # layer_id is the layer's key (graph and id); the fingerprint guards the kind's config.
        key = (layer_id, kind.fingerprint, sig.dtype, sig.shape[1:], sig.training,
               tuple((v.name, v.shape, v.dtype) for v in sig.variables), tuple(s[1:] for s in sig.more_shapes))
        with self._lock:
            found = self._sessions.get(key)
            if found is not None:
                self._sessions.move_to_end(key)
                return found
            build_lock = self._building.setdefault(key, threading.Lock())
        with build_lock:  # one compile per key, even under concurrent first applies
            with self._lock:
                if key in self._sessions:
                    return self._sessions[key]
            compiled = self._compile(kind, sig)
            with self._lock:
                self._sessions[key] = compiled
                self.nbytes += compiled.nbytes
                self._building.pop(key, None)
                while len(self._sessions) > 1 and (len(self._sessions) > self.max_sessions
                                                   or self.nbytes > self.max_bytes):
                    self.nbytes -= self._sessions.popitem(last=False)[1].nbytes
        return compiled

    def _compile(self, kind: LayerKind, sig: Signature) -> CompiledLayer:
        model, outputs = compile_layer(kind, sig)
        raw = model.SerializeToString()
        return CompiledLayer(self.session(raw, uploaded=kind.user_defined), outputs, len(raw))

    def session(self, model: bytes, *, uploaded: bool = False) -> ort.InferenceSession:
        """A session on the active providers (not cached; callers keep what they reuse).
        ``uploaded``: a model a user sent, whose constants ORT must not fold at load (a tiny
        ``ConstantOfShape`` would otherwise allocate its whole output when the session is made)."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = self.cpu_arena
        if uploaded:
            options.add_session_config_entry("optimization.disable_specified_optimizers", "ConstantFolding")
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        return ort.InferenceSession(model, options, providers=self.providers.ort_providers())

    def evict_layer(self, layer_id: str) -> None:
        """Release a deleted layer's sessions (and the device memory they hold)."""
        with self._lock:
            for key in [k for k in self._sessions if k[0] == layer_id]:
                self.nbytes -= self._sessions.pop(key).nbytes

    def active_providers(self) -> list[str]:
        return list(self.providers.active)
