"""The forward pass: check the inputs, build on first use, run, record; and whether a run is
cheap enough to stay on the calling thread (``runs_inline``; the policy that uses it is
``plane.dispatch``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from layerserve.protocol import input_ref
from layerserve.server.config import Settings
from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer
from layerserve.server.errors import IncompatibleInput, InvalidArgument, LayerServeError
from layerserve.server.layers.base import LayerKind, Signature, VariableSpec
from layerserve.server.layers.kit.dtypes import check_float_input, dtype_name
from layerserve.server.plane.lifecycle import Lifecycle, input_specs
from layerserve.server.plane.records import Records
from layerserve.server.plane.transactions import layer_gone, retried
from layerserve.server.runtime.executor import Executor
from layerserve.server.store.base import StateStore

__all__ = ["ApplyResult", "Applying", "Resolved", "var_specs"]

_LIMITS_KEPT = 4096
Resolved = tuple[Graph, Layer]  # an apply's graph and layer, looked up once per request


@dataclass
class ApplyResult:
    outputs: list[np.ndarray]
    input_refs: list[str] | None  # None: not asked for and nothing recorded, so not computed
    layer: Layer
    version: int = 0  # the layer version whose weights computed the outputs


def var_specs(g: Graph, layer: Layer) -> tuple[VariableSpec, ...]:
    """The signature's view of the layer's variables (404 when the layer was deleted meanwhile)."""
    variables = g.variables
    try:
        return tuple(VariableSpec(layer.short_name(n), variables[n].shape, variables[n].dtype)
                     for n in layer.variables)
    except KeyError:
        raise layer_gone(g, layer) from None


class Applying(Lifecycle, Records):
    """Applies: thread-safe, one consistent snapshot of the weights per run."""

    def __init__(self, settings: Settings, store: StateStore, executor: Executor) -> None:
        super().__init__(settings, store, executor)
        # (id of a layer kind, input shape) -> that kind, once within the output and cost limits
        self._within_limits: dict[tuple[int, tuple[int, ...]], LayerKind] = {}

    @retried
    def apply(self, graph: str, ref: str, inputs: list[np.ndarray], *, training: bool | None = None,
              batch: bool = True, revision: int | None = None, refs: bool = True,
              resolved: Resolved | None = None) -> ApplyResult:
        """Forward pass; ``batch=False`` runs it alone in the calling thread (see ``runs_inline``);
        ``revision``: the store's, just read (``StateStore.head_revision_async``). The input
        references (a sha256 of each input) are computed when ``refs`` asks for them or when
        the apply records losses or updates, which are keyed by them. ``resolved``: the layer as
        ``resolve_cached`` found it for this request, so that it is looked up once."""
        g, layer = resolved if resolved is not None else self.layer(graph, ref, revision)
        n = layer.kind.num_inputs
        if len(inputs) != n:
            raise InvalidArgument(f"layer {layer.name!r} takes {n} input(s), got {len(inputs)}",
                                  code="wrong_input_count")
        if layer.scope is None:  # TF takes the scope first: a failing first apply still uses it up
            with self._mutation(g, layer):
                if layer.scope is None:
                    g.assign_scope(layer)
                    self._commit(g)
        for each in inputs:
            check_float_input(each, layer.class_name)
        x = inputs[0]
        training = bool(training) and layer.kind.takes_training
        layer.kind.check_call(tuple(x.shape), dtype_name(x.dtype), training=training)
        built_now = False
        if not layer.built:
            with self._mutation(g, layer):
                if not layer.built:
                    self._build(g, layer, [tuple(i.shape) for i in inputs], inputs[0].dtype.name)
                    built_now = True
        # TF checks a first input against the spec of the unbuilt layer only (done by _build)
        specs = [None] * n if built_now else input_specs(layer)
        xs = [self._check_input(layer, each, spec, k) for k, (each, spec) in enumerate(zip(inputs, specs, strict=False))]
        layer.kind.check_op(tuple(xs[0].shape), dtype_name(xs[0].dtype), training=training)
        version = g.layer_version(layer)
        values = g.values  # one snapshot: never half-old, half-new weights
        sig = Signature(dtype_name(xs[0].dtype), tuple(xs[0].shape), training, var_specs(g, layer),
                        tuple(tuple(each.shape) for each in xs[1:]))
        self._check_limits(layer, tuple(xs[0].shape))
        own = self.values_of(g, layer, list(layer.variables), values)
        outputs = self.executor.run(layer, sig, xs[0], own, batch=batch, more_inputs=xs[1:])
        for name, value in outputs.items():  # custom graphs: their outputs' sizes are known only now
            self._check_size(np.shape(value), f"output {name!r} of layer {layer.name!r}")
        input_refs = self._record(g, layer, inputs, outputs, values, training=training)
        if input_refs is None and refs:
            input_refs = [input_ref(each) for each in inputs]
        ys = [outputs.pop("y"), *(outputs.pop(f"y{k}") for k in range(1, layer.kind.num_outputs))]
        return ApplyResult(ys, input_refs, layer, version)

    def resolve_cached(self, graph: str, ref: str, revision: int | None) -> Resolved | None:
        """The graph and layer of an apply when finding them needs no store I/O (so on the event
        loop): always with a store of this process alone; with a shared store, only while the
        cached copy is at ``revision``. None: the apply resolves the layer where it runs."""
        if self.store.shared:
            cached = self.graphs.get(graph)
            if revision is None or cached is None or cached.revision != revision:
                return None
        return self.layer(graph, ref, revision)

    def runs_inline(self, resolved: Resolved, inputs: list[np.ndarray], *, training: bool | None,
                    budget_s: float) -> bool:
        """Whether this apply (of the layer ``resolve_cached`` found) is cheap enough to run
        without a thread hop: the layer is built, records nothing (no lock, no store write) and
        its recent runs took under ``budget_s``."""
        layer = resolved[1]
        cost = self.executor.cost_s(layer.key)
        return (cost is not None and cost < budget_s and layer.built and layer.scope is not None
                and not (training and layer.kind.takes_training) and len(inputs) == 1
                and layer.kind.config.get("activity_regularizer") is None and not layer.kind.user_defined)

    def _check_input(self, layer: Layer, x: np.ndarray, spec: Any = None, index: int = 0) -> np.ndarray:
        if spec is not None:
            spec.check(tuple(x.shape), dtype_name(x.dtype), layer.name, index)
        assert layer.dtype is not None
        if dtype_name(x.dtype) == layer.dtype or layer.kind.dtype_policy == "follow":
            return x
        if layer.kind.dtype_policy == "cast":
            return x.astype(layer.dtype)
        raise IncompatibleInput(layer.kind.dtype_error(layer.dtype, x.dtype.name), exception="TypeError",
                                code="dtype_mismatch")

    def _check_limits(self, layer: Layer, shape: tuple[int, ...]) -> None:
        """The output size and cost limits. They depend on the layer's kind and the input shape
        only (the limits are fixed at start), so a kind passes them once per shape; the kind
        kept with the entry tells a live kind from one whose id was reused."""
        key = (id(layer.kind), shape)
        if self._within_limits.get(key) is layer.kind:
            return
        self._check_output_size(layer, shape)
        self._check_cost(layer, shape)
        if len(self._within_limits) >= _LIMITS_KEPT:
            self._within_limits.clear()
        self._within_limits[key] = layer.kind

    def _check_cost(self, layer: Layer, shape: tuple[int, ...]) -> None:
        """The cost model of built-in layers (custom graphs are bounded by the timeout, which
        terminates their run)."""
        if layer.kind.user_defined:
            return
        cost, limit = layer.kind.apply_cost(shape), self.settings.max_apply_cost
        if cost > limit:
            raise InvalidArgument(f"applying layer {layer.name!r} to an input of shape {list(shape)} takes about "
                                  f"{cost:.3g} multiply-accumulates, more than the limit of {limit:.3g} "
                                  "(--max-apply-cost)", code="apply_too_costly", cost=cost, limit=limit)

    def _check_output_size(self, layer: Layer, shape: tuple[int, ...]) -> None:
        if layer.kind.user_defined or layer.kind.num_inputs != 1:
            return  # a custom graph's output shape is known only by running it
        try:
            out = layer.kind.compute_output_shape(shape)
        except (LayerServeError, NotImplementedError):
            return  # the apply itself reports what is wrong with this input
        self._check_size(out, f"the output of layer {layer.name!r}")
