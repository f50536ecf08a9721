"""Programs (TF1 graph mode): registration, runs and the commit of their writes.

A program is registered once per content hash and kept per graph (bounded, least recently
used out). A run composes it for its feed signature (cached ONNX Runtime session), reads the
variables as of its start, and commits the variables it writes (assigns, moving statistics) in
one store commit after it; a run that writes holds the graph's lock from its read to its commit,
so concurrent runs each apply their update exactly once, and a failed run changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer, Variable
from layerserve.server.core.program import Composed, check_gradient_paths, check_program, compose, program_budget
from layerserve.server.errors import Conflict, InvalidArgument, LayerServeError, NotFound
from layerserve.server.layers.base import Signature, VariableSpec
from layerserve.server.layers.kit.dtypes import dtype_name
from layerserve.server.plane.dataplane import DataPlane
from layerserve.server.plane.program_baking import (
    MAX_REBAKES,
    Baked,
    bake,
    initial_value,
    resident_inputs,
    weight_versions,
)
from layerserve.server.plane.transactions import retried
from layerserve.server.runtime.cancel import guarded_run
from layerserve.server.runtime.compiler import compile_layer
from layerserve.server.runtime.model_check import clean_message
from layerserve.server.runtime.outputs import run_uncopied
from layerserve.server.runtime.sessions import CompiledLayer

__all__ = ["ProgramPlane", "VARIABLE_NAME"]

VARIABLE_NAME = re.compile(r"(?!.*\.\.)(?!/)[A-Za-z0-9_./-]{1,256}:[0-9]+")
_DTYPES = ("float16", "float32", "float64", "int32", "int64", "bool")
_MAX_PROGRAMS = 256
_MAX_COMPILED = 128


@dataclass
class _Program:
    id: str
    model: onnx.ModelProto
    outputs: list[str]


class _Source:
    """What the composer needs from a graph: its layers, their models, its variables."""

    def __init__(self, g: Graph) -> None:
        self.g = g

    def layer(self, layer_id: str) -> Layer:
        return self.g.resolve(layer_id)

    def layer_model(self, layer: Layer, dtype: str, shape: tuple[int, ...], *, training: bool
                    ) -> tuple[onnx.ModelProto, list[str]]:
        specs = tuple(VariableSpec(layer.short_name(n), self.g.variables[n].shape, self.g.variables[n].dtype)
                      for n in layer.variables)
        compute = layer.dtype or dtype
        sig = Signature(compute, shape, training and layer.kind.takes_training, specs)
        model, outputs = compile_layer(layer.kind, sig, name=layer.name)
        if dtype != compute:  # the hosted layer casts inputs of another float dtype (TF's autocast)
            raise InvalidArgument(f"layer {layer.name!r} computes in {compute}; the program feeds it {dtype}",
                                  code="dtype_mismatch", exception="TypeError")
        return model, outputs

    def variable(self, name: str) -> tuple[str, tuple[int, ...]]:
        var = self.g.variables.get(name)
        if var is None:
            raise NotFound(f"graph {self.g.name!r} has no variable {name!r}", code="variable_not_found")
        return var.dtype, var.shape


@dataclass
class _Compiled:
    composed: Composed
    session: CompiledLayer
    layers: tuple[str, ...]  # the hosted layers it inlines (a deleted one means composing again)
    baked: Baked | None = None  # weights baked in, for programs without writes
    rebakes: int = 0


class ProgramPlane:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.settings = plane.settings
        self._parsed: OrderedDict[str, onnx.ModelProto] = OrderedDict()
        self._loaded: OrderedDict[str, _Program] = OrderedDict()
        self._compiled: OrderedDict[tuple[Any, ...], _Compiled] = OrderedDict()
        self._lock = threading.Lock()

    # ---- variables not owned by a layer ------------------------------------------------------
    @retried
    def create_variable(self, graph: str, name: str, value: np.ndarray, *, trainable: bool) -> dict[str, Any]:
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            raise InvalidArgument(f"variable name must match {VARIABLE_NAME.pattern}, got {str(name)[:80]!r}",
                                  code="invalid_name")
        if dtype_name(value.dtype) not in _DTYPES:
            raise InvalidArgument(f"variables hold {', '.join(_DTYPES)}, got {value.dtype}", code="unsupported_dtype",
                                  exception="TypeError")
        self.plane._check_size(tuple(value.shape), f"variable {name!r}")
        g = self.plane.graph(graph, create=True)
        with self.plane._mutation(g):
            if name in g.variables:
                raise Conflict(f"Variable {name.split(':')[0]} already exists, disallowed. Did you mean to set "
                               "reuse=True or reuse=tf.AUTO_REUSE in VarScope?", code="variable_exists")
            g.variables[name] = Variable(name, tuple(int(d) for d in value.shape), dtype_name(value.dtype), trainable)
            g.set_values({name: np.array(value, copy=True)})
            self.plane._commit(g, variables=[name])
        return g.variables[name].to_json()

    # ---- registration ------------------------------------------------------------------------
    @retried
    def register(self, graph: str, data: bytes) -> str:
        """Store the program (once per content); its id is the sha256 of its bytes."""
        if len(data) > self.settings.max_model_bytes:
            raise InvalidArgument(f"the program is {len(data)} bytes, more than the limit of "
                                  f"{self.settings.max_model_bytes} (--max-model-bytes)", code="program_too_large")
        program_id = hashlib.sha256(data).hexdigest()
        g = self.plane.graph(graph, create=True)
        if program_id in g.programs:
            return program_id
        model = self._parse(program_id, data)
        s = self.settings
        budget = program_budget(max_nodes=s.max_program_nodes, max_edges=s.max_program_edges,
                                max_depth=s.max_model_depth)
        gradients = _gradients_available()
        check_program(model, budget=budget, has_layer=lambda ref: _has_layer(g, ref),
                      has_variable=lambda name: name in g.variables, gradients=gradients)
        # Shape inference on the program (here for its gradients, at each run's composing) holds
        # the GIL: its cost is measured first, in a child stopped at its limits (runtime.vetting).
        self.plane.executor.vetting.program(data, max_inference_s=s.max_model_inference_s)
        if gradients:
            check_gradient_paths(model)
        with self.plane._mutation(g):
            g.programs[program_id] = base64.b64encode(data).decode()
            named = {entry["id"] for entry in g.named_programs.values()}
            unnamed = [p for p in g.programs if p not in named]
            for old in unnamed[:max(0, len(g.programs) - _MAX_PROGRAMS)]:  # the oldest unnamed go first
                del g.programs[old]
            self.plane._commit(g)
        return program_id

    def infer(self, model: onnx.ModelProto, *, data_prop: bool = False) -> onnx.ModelProto:
        """Shape inference for composing: in a validation child, within --max-model-inference-s of CPU
        (a feed can make a registered program's inference slow, and here it would hold the GIL)."""
        return self.plane.executor.vetting.inferred(model, data_prop=data_prop,
                                                    max_inference_s=self.settings.max_model_inference_s)

    def _parse(self, program_id: str, data: bytes) -> onnx.ModelProto:
        with self._lock:
            found = self._parsed.get(program_id)
        if found is not None:
            return found
        try:
            model = onnx.load_from_string(data)
        except Exception:
            raise InvalidArgument("the program is not an ONNX model", code="invalid_program") from None
        with self._lock:
            self._parsed[program_id] = model
            while len(self._parsed) > _MAX_COMPILED:
                self._parsed.popitem(last=False)
        return model

    # ---- runs --------------------------------------------------------------------------------
    def run(self, graph: str, program_id: str, feeds: dict[str, np.ndarray], fetches: list[str],
            checkpoint: str | None = None) -> list[np.ndarray]:
        g = self.plane.graph(graph)
        program = self._program(g, program_id)
        unknown = [f for f in fetches if f not in program.outputs]
        if unknown:
            raise InvalidArgument(f"the program does not compute {unknown[0]!r}", code="unknown_fetch")
        compiled = self._compile(g, program, feeds)
        if checkpoint is not None:
            outputs = self._execute(g, compiled, feeds, self._pinned_values(g, compiled, checkpoint), live=False)
            return self._pick(program, compiled, outputs, fetches)
        if not compiled.composed.writes:
            outputs = self._execute(g, compiled, feeds, g.values)
            return self._pick(program, compiled, outputs, fetches)
        return self._run_and_commit(graph, program, feeds, fetches)

    @retried
    def _run_and_commit(self, graph: str, program: _Program, feeds: dict[str, np.ndarray],
                        fetches: list[str]) -> list[np.ndarray]:
        g = self.plane.graph(graph)
        compiled = self._compile(g, program, feeds)
        with self.plane._mutation(g):
            outputs = self._execute(g, compiled, feeds, g.values)
            writes = self._writes(g, compiled, outputs)
            g.set_values(writes)
            self.plane._commit(g, variables=list(writes))
        return self._pick(program, compiled, outputs, fetches)

    def _pinned_values(self, g: Graph, compiled: _Compiled, checkpoint: str) -> Mapping[str, np.ndarray]:
        """A named checkpoint's values for a read-only run (see ``plane.checkpoints``)."""
        if compiled.composed.writes:
            raise InvalidArgument(f"a run pinned to checkpoint {checkpoint!r} is read-only; this one writes "
                                  f"{sorted(compiled.composed.writes)[0]}", code="pinned_run_writes")
        if self.plane.pinned_values is None:
            raise NotFound(f"no checkpoint {checkpoint!r}", code="checkpoint_not_found")
        values = self.plane.pinned_values(g.name, checkpoint)
        needed = [*compiled.composed.variable_inputs.values(),
                  *(n for lid, _ in compiled.composed.layer_inputs.values() for n in g.layers[lid].variables)]
        missing = [n for n in needed if n not in values]
        if missing:
            raise Conflict(f"checkpoint {checkpoint!r} holds no value for variable {missing[0]}",
                           code="checkpoint_mismatch")
        return values

    def registered(self, graph: str) -> list[tuple[str, onnx.ModelProto]]:
        """The graph's registered programs (id, model), oldest first: read-only, for views."""
        g = self.plane.graph(graph)
        return [(pid, self._parse(pid, base64.b64decode(text))) for pid, text in list(g.programs.items())]

    def _program(self, g: Graph, program_id: str) -> _Program:
        text = g.programs.get(program_id)
        if text is None:
            raise NotFound(f"graph {g.name!r} has no program {program_id[:80]!r}; register it first",
                           code="program_not_found")
        with self._lock:
            found = self._loaded.get(program_id)
        if found is None:
            model = self._parse(program_id, base64.b64decode(text))
            found = _Program(program_id, model, [o.name for o in model.graph.output])
            with self._lock:
                self._loaded[program_id] = found
                while len(self._loaded) > _MAX_COMPILED:
                    self._loaded.popitem(last=False)
        return found

    def _compile(self, g: Graph, program: _Program, feeds: dict[str, np.ndarray]) -> _Compiled:
        key = (g.name, program.id, tuple((k, v.dtype.char, v.shape) for k, v in feeds.items()))
        with self._lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
        if found is not None and all(lid in g.layers for lid in found.layers):
            return found
        shapes = {k: (dtype_name(v.dtype), tuple(v.shape)) for k, v in feeds.items()}
        try:
            composed = compose(program.model, shapes, program.outputs, _Source(g), infer=self.infer)
        except LayerServeError:
            raise
        except Exception as exc:  # onnx refused the composed graph: the program does not fit these feeds
            raise InvalidArgument(f"the program cannot run on these feeds: {clean_message(str(exc))}",
                                  code="invalid_program", op_error="InvalidArgumentError") from None
        session = self.plane.executor.sessions.session(composed.model.SerializeToString())
        outputs = [*composed.fetch_outputs, *composed.writes.values()]
        compiled = _Compiled(composed, CompiledLayer(session, outputs), tuple(composed.layers))
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > _MAX_COMPILED:
                self._compiled.popitem(last=False)
        return compiled

    def _execute(self, g: Graph, compiled: _Compiled, feeds: dict[str, np.ndarray], values: Any, *,
                 live: bool = True) -> dict[str, np.ndarray]:
        """One run on ``values`` (``live``: the graph's current ones, which a read-only program may
        have baked into its session)."""
        composed = compiled.composed
        inputs = dict(feeds)
        session = None if composed.writes or not live else self._baked(g, compiled)
        if session is None:
            session = compiled.session
            inputs.update(resident_inputs(g, composed, values, self.plane.executor))
        for name, variable in composed.init_inputs.items():
            inputs[name] = initial_value(g, variable, values)
        for extra in composed.extra_feeds:
            kind = g.layers[extra.layer_id].kind
            inputs[extra.input] = kind.extra_feeds(extra.shape, extra.dtype, training=True)[extra.name]
        try:  # guarded: a run whose request gave up is terminated, and commits nothing
            arrays = guarded_run(lambda options: run_uncopied(session.session, session.output_names, inputs, options))
        except LayerServeError:
            raise
        except Exception as exc:  # the program failed on these feeds (a shape, an index): TF's InvalidArgumentError
            raise InvalidArgument(f"the program failed on these feeds: {clean_message(str(exc))}",
                                  code="run_failed", op_error="InvalidArgumentError") from None
        return dict(zip(session.output_names, arrays, strict=True))

    def _baked(self, g: Graph, compiled: _Compiled) -> CompiledLayer | None:
        """The session with the current weights baked in, made once per weight version (see program_baking)."""
        versions = weight_versions(g, compiled.composed)
        baked = compiled.baked
        if baked is not None and baked.versions == versions:
            return baked.session
        if compiled.rebakes > MAX_REBAKES:
            return None
        values = g.values
        session = bake(self.plane.executor.sessions, compiled.composed,
                       resident_inputs(g, compiled.composed, values, self.plane.executor),
                       compiled.session.output_names)
        if weight_versions(g, compiled.composed) == versions:  # no write slipped in while it was made
            compiled.rebakes += baked is not None
            compiled.baked = Baked(versions, session)
        return session

    @staticmethod
    def _writes(g: Graph, compiled: _Compiled, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        writes = {}
        for variable, output in compiled.composed.writes.items():
            var, value = g.variables[variable], outputs[output]
            if tuple(value.shape) != var.shape:
                raise InvalidArgument(f"Trying to assign a value of shape {list(value.shape)} to variable "
                                      f"{variable} of shape {list(var.shape)}", code="incompatible_assign",
                                      op_error="InvalidArgumentError")
            writes[variable] = np.asarray(value, dtype=var.dtype)
        return writes

    @staticmethod
    def _pick(program: _Program, compiled: _Compiled, outputs: dict[str, np.ndarray],
              fetches: list[str]) -> list[np.ndarray]:
        index = {name: compiled.composed.fetch_outputs[k] for k, name in enumerate(program.outputs)}
        return [outputs[index[f]] for f in fetches]


def _gradients_available() -> bool:
    try:
        import layerserve.server.core.gradients  # noqa: F401
    except ImportError:
        return False
    return True


def _has_layer(g: Graph, ref: str) -> bool:
    return ref in g.layers
