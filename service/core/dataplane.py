"""Every operation the service offers, independent of any transport.

HTTP routes (native and OIP v2) only decode a request, call one method here and encode the
result. Methods are synchronous and thread-safe: mutations of a graph hold its lock and end
with one store commit; applies read one consistent snapshot of the variable values and only
take the lock to record losses and updates.

With a store that other replicas write too, every call first brings its graph up to date
(``StateStore.refresh``: one round trip when nothing changed), and a write that loses the race
for the store's compare-and-set is run again on the fresh copy (``_retried``), a bounded
number of times.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from layerserve.protocol import input_ref
from layerserve.server.config import Settings
from layerserve.server.core.dtypes import check_float_input, dtype_name, normalize_dtype
from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import ConditionalLoss, Layer, PendingUpdate, short_name
from layerserve.server.core.naming import to_snake_case
from layerserve.server.core.regularizers import parse_regularizer
from layerserve.server.errors import Conflict, IncompatibleInput, InvalidArgument, LayerServeError, NotFound
from layerserve.server.layers import kind_for
from layerserve.server.layers.base import Signature, VariableSpec
from layerserve.server.runtime.batching import parse_batching
from layerserve.server.runtime.executor import Executor
from layerserve.server.store.base import StaleGraph, StateStore

__all__ = ["ApplyResult", "DataPlane", "GRAPH_NAME", "LAYER_NAME"]

GRAPH_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Argument errors TF raises before the layer takes a name (so no ``dense_N`` is used up).
_CHECKED_BEFORE_NAMING = ("unknown_argument", "missing_argument")
# The contract's [A-Za-z0-9_.-]{1,128}, less names holding "..": a ".." path segment is
# rewritten by HTTP clients, so such a layer could never be addressed by name.
LAYER_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_.-]{1,128}")


F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ApplyResult:
    outputs: list[np.ndarray]
    input_refs: list[str] | None  # None: not asked for and nothing recorded, so not computed
    layer: Layer
    version: int = 0  # the layer version whose weights computed the outputs


def check_name(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(f"{what} must match {pattern.pattern}, got {str(value)[:80]!r}", code="invalid_name")
    return value


def _retried(method: F) -> F:
    """Run a write again on the store's fresh copy when another replica committed first."""

    @functools.wraps(method)
    def wrapper(self: DataPlane, *args: Any, **kwargs: Any) -> Any:
        attempts = max(1, self.settings.write_retries)
        for attempt in range(attempts):
            try:
                return method(self, *args, **kwargs)
            except StaleGraph:
                if attempt + 1 == attempts:
                    raise Conflict(f"the graph kept changing under this write ({attempts} attempts); retry it",
                                   code="write_conflict") from None
                time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))  # desynchronise the racers
        raise AssertionError("unreachable")

    return wrapper  # type: ignore[return-value]


def check_version(g: Graph, layer: Layer, expected: int | None) -> None:
    """``If-Match``: refuse a write computed against another version of the layer."""
    if expected is not None and g.layer_version(layer) != expected:
        raise Conflict(f"layer {layer.name!r} is at version {g.layer_version(layer)}, not {expected}",
                       code="version_conflict", version=g.layer_version(layer))


class DataPlane:
    def __init__(self, settings: Settings, store: StateStore, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.graphs: dict[str, Graph] = store.load()
        self._graphs_lock = threading.Lock()
        store.watch(self._warm)

    # ---- graphs ------------------------------------------------------------------------
    def graph(self, name: str, create: bool = False, revision: int | None = None) -> Graph:
        """The graph, current: ``revision``, when given, is the store's revision just read."""
        check_name(name, GRAPH_NAME, "graph name")
        cached = self.graphs.get(name)
        if cached is not None and revision is not None and cached.revision == revision:
            return cached
        current = self.store.refresh(name, cached)
        if current is not None and current is cached:
            return current
        with self._graphs_lock:
            installed = self.graphs.get(name)
            if current is None:
                if not create and name != "default":
                    raise NotFound(f"no graph {name!r}", code="graph_not_found")
                current = installed if installed is not None and installed.revision == 0 else Graph(name)
            elif installed is not None and 0 <= current.revision < installed.revision:
                return installed  # another thread installed a newer copy meanwhile
            if installed is not None and installed is not current:
                current.lock = installed.lock  # one writer at a time per graph in this process
                self._forget_removed(installed, current)
            self.graphs[name] = current
            return current

    def _warm(self, name: str, revision: int) -> None:
        """Another replica committed: refresh a graph this one serves before a request needs it."""
        cached = self.graphs.get(name)
        if cached is not None and 0 <= revision and cached.revision < revision:
            try:
                self.graph(name)
            except Exception:  # warming is a hint; the next request refreshes anyway
                pass

    def _forget_removed(self, old: Graph, new: Graph) -> None:
        for layer_id in old.layers.keys() - new.layers.keys():
            self.executor.forget(old.layers[layer_id].key)

    def graph_names(self) -> list[str]:
        return self.store.graph_names(list(self.graphs))

    def layer(self, graph: str, ref: str, revision: int | None = None) -> tuple[Graph, Layer]:
        g = self.graph(graph, revision=revision)
        return g, g.resolve(ref)

    # ---- create, patch, delete ---------------------------------------------------------
    @_retried
    def create_layer(self, graph: str, class_name: str, config: dict[str, Any], name: str | None = None,
                     trainable: bool | None = None, dtype: str | None = None, scope: str | None = None,
                     reuse: bool | str = False, batching: dict[str, Any] | None = None) -> Layer:
        config = dict(config)
        name = _hoist(config, "name", name)
        trainable = _hoist(config, "trainable", trainable)
        dtype = _hoist(config, "dtype", dtype)
        if name is not None:
            check_name(name, LAYER_NAME, "layer name")
        if scope is not None:
            check_name(scope, LAYER_NAME, "scope")
        if not isinstance(trainable, bool) and trainable is not None:
            raise InvalidArgument("trainable must be true or false", code="invalid_argument", exception="TypeError")
        cls = kind_for(class_name)
        try:
            dtype = normalize_dtype(dtype)
            kind = cls.from_kwargs(config)
        except InvalidArgument as error:
            if name is None and error.code not in _CHECKED_BEFORE_NAMING and not cls.user_defined:
                self._use_up_name(graph, cls.class_name)
            raise
        overrides = parse_batching(batching or {})
        kind.check_layer_dtype(dtype)
        self.executor.check_loadable(kind.models_to_check())
        g = self.graph(graph, create=True)
        with self._mutation(g):
            g.check_layer_limit(self.settings.max_layers_per_graph)
            layer = g.new_layer(kind, name, True if trainable is None else trainable, dtype, scope, reuse)
            layer.batching = overrides
            self._commit(g)
        return layer

    def _use_up_name(self, graph: str, class_name: str) -> None:
        """TF names a layer in the base constructor, before the class checks its arguments."""
        g = self.graph(graph, create=True)
        with self._mutation(g):
            g.names.new_layer_name(to_snake_case(class_name))
            self._commit(g)

    @_retried
    def patch_layer(self, graph: str, ref: str, trainable: bool | None = None,
                    batching: dict[str, Any] | None = None, if_match: int | None = None) -> Layer:
        g, layer = self.layer(graph, ref)
        overrides = None if batching is None else parse_batching(batching)
        with self._mutation(g, layer):
            check_version(g, layer, if_match)
            if trainable is not None:
                layer.trainable = trainable
            if overrides is not None:
                layer.batching = {**layer.batching, **overrides}
            self._commit(g)
        return layer

    @_retried
    def delete_layer(self, graph: str, ref: str, if_match: int | None = None) -> None:
        g, layer = self.layer(graph, ref)
        with self._mutation(g):
            check_version(g, layer, if_match)
            del g.layers[layer.id]
            orphans = [n for n in layer.variables if not g.owners(n)]
            for name in orphans:
                del g.variables[name]
            g.drop_values(orphans)
            self._commit(g)
        self.executor.forget(layer.key)

    # ---- build -------------------------------------------------------------------------
    @_retried
    def build(self, graph: str, ref: str, input_shape: list[Any], dtype: str | None = None,
              if_match: int | None = None) -> Layer:
        g, layer = self.layer(graph, ref)
        n = layer.kind.num_inputs
        shapes = [_shape_arg(input_shape)] if n == 1 else _shape_list(input_shape, n)
        with self._mutation(g, layer):
            check_version(g, layer, if_match)
            if layer.built:
                return layer
            self._build(g, layer, shapes, normalize_dtype(dtype) or layer.dtype or "float32")
        return layer

    def _build(self, g: Graph, layer: Layer, shapes: list[tuple[int | None, ...]], input_dtype: str) -> None:
        """Create the variables (or share them with ``reuse``) and commit, all or nothing (the
        scope an apply took first stays taken, as in TF)."""
        shape = shapes[0]
        for index, (spec, each) in enumerate(zip(_input_specs(layer), shapes, strict=False)):
            if spec is not None:
                spec.check(each, input_dtype, layer.name, index)
        layer.kind.check_build_shape(shape)
        dtype = layer.kind.build_dtype(layer.dtype or input_dtype)
        specs = layer.kind.build_variables(shapes, dtype)
        for var in specs:
            self._check_size(var.shape, f"variable {var.name!r} of layer {layer.name!r}")
        if specs:  # TF names the scope when the first variable is made; the others at first apply
            g.assign_scope(layer)
        plan = g.plan_variables(layer, specs)
        self._create_variables(g, layer, plan)
        layer.dtype, layer.built, layer.build_shape = dtype, True, layer.kind.recorded_build_shape(shape)
        self._commit(g, variables=[full for _, full, new in plan if new])

    def _create_variables(self, g: Graph, layer: Layer, plan: list[tuple[VariableSpec, str, bool]]) -> None:
        from layerserve.server.core.layer import Variable

        values = {}
        for spec, full, new in plan:
            if new:
                g.variables[full] = Variable(full, spec.shape, spec.dtype, spec.trainable and layer.trainable,
                                             f"{layer.scope}/{spec.name}")
                values[full] = spec.initial_value()
                if spec.regularizer is not None:
                    layer.weight_losses.append((full, spec.regularizer))
            if short_name(full) != spec.name:  # a name made unique ignoring case
                layer.aliases[full] = spec.name
            layer.variables.append(full)
        g.set_values(values)

    # ---- apply -------------------------------------------------------------------------
    @_retried
    def apply(self, graph: str, ref: str, inputs: list[np.ndarray], training: bool | None = None,
              batch: bool = True, revision: int | None = None, refs: bool = True) -> ApplyResult:
        """Forward pass; ``batch=False`` runs it alone in the calling thread (see ``runs_inline``);
        ``revision``: the store's, just read (``StateStore.head_revision_async``). The input
        references (a sha256 of each input) are computed when ``refs`` asks for them or when
        the apply records losses or updates, which are keyed by them."""
        g, layer = self.layer(graph, ref, revision)
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
        layer.kind.check_call(tuple(x.shape), dtype_name(x.dtype), training)
        built_now = False
        if not layer.built:
            with self._mutation(g, layer):
                if not layer.built:
                    self._build(g, layer, [tuple(i.shape) for i in inputs], inputs[0].dtype.name)
                    built_now = True
        # TF checks a first input against the spec of the unbuilt layer only (done by _build)
        specs = [None] * n if built_now else _input_specs(layer)
        xs = [self._check_input(layer, each, spec, k) for k, (each, spec) in enumerate(zip(inputs, specs, strict=False))]
        layer.kind.check_op(tuple(xs[0].shape), dtype_name(xs[0].dtype), training)
        version = g.layer_version(layer)
        values = g.values  # one snapshot: never half-old, half-new weights
        sig = Signature(dtype_name(xs[0].dtype), tuple(xs[0].shape), training, self._var_specs(g, layer),
                        tuple(tuple(each.shape) for each in xs[1:]))
        self._check_output_size(layer, tuple(xs[0].shape))
        outputs = self.executor.run(layer, sig, xs[0], {n: values[n] for n in layer.variables}, batch, xs[1:])
        input_refs = self._record(g, layer, inputs, outputs, training, values)
        if input_refs is None and refs:
            input_refs = [input_ref(each) for each in inputs]
        ys = [outputs.pop("y"), *(outputs.pop(f"y{k}") for k in range(1, layer.kind.num_outputs))]
        return ApplyResult(ys, input_refs, layer, version)

    def runs_inline(self, graph: str, ref: str, inputs: list[np.ndarray], training: bool | None,
                    budget_s: float, revision: int | None = None) -> bool:
        """Whether this apply is cheap enough to run without a thread hop: the layer is built,
        records nothing (no lock, no store write) and its recent runs took under ``budget_s``.
        With a shared store, only while the cached copy is at ``revision`` (no store I/O here)."""
        if self.store.shared:
            cached = self.graphs.get(graph)
            if revision is None or cached is None or cached.revision != revision:
                return False
        _, layer = self.layer(graph, ref, revision)
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

    def _check_output_size(self, layer: Layer, shape: tuple[int, ...]) -> None:
        if layer.kind.user_defined or layer.kind.num_inputs != 1:
            return  # a custom graph's output shape is known only by running it
        try:
            out = layer.kind.compute_output_shape(shape)
        except (LayerServeError, NotImplementedError):
            return  # the apply itself reports what is wrong with this input
        self._check_size(out, f"the output of layer {layer.name!r}")

    def _check_size(self, shape: tuple[int | None, ...], what: str) -> None:
        """Variables and outputs obey the tensor limit too: a huge ``units`` or input width
        must not make the server allocate what no request could carry."""
        count = 1
        for dim in shape:
            count *= 1 if dim is None else max(int(dim), 0)
        if count > self.settings.max_tensor_elements:
            raise InvalidArgument(f"{what} would have {count} elements, more than the limit of "
                                  f"{self.settings.max_tensor_elements} (--max-tensor-elements)", code="tensor_too_large")

    @staticmethod
    def _var_specs(g: Graph, layer: Layer) -> tuple[VariableSpec, ...]:
        return tuple(VariableSpec(layer.short_name(n), g.variables[n].shape, g.variables[n].dtype)
                     for n in layer.variables)

    def _record(self, g: Graph, layer: Layer, inputs: list[np.ndarray], outputs: dict[str, np.ndarray],
                training: bool, values: Any) -> list[str] | None:
        """Record the apply's conditional losses and pending updates, keyed by the inputs'
        references; those references, or None when there was nothing to record."""
        loss_values = list(layer.kind.conditional_losses(outputs))
        loss_values += self._activity_losses(layer, outputs["y"])
        stats = layer.kind.update_stats(outputs, training)
        if not loss_values and not stats:
            return None
        refs = [input_ref(each) for each in inputs]
        ref, others = refs[0], tuple(refs[1:])
        losses = [ConditionalLoss(ref, value, others) for value in loss_values]
        updates = self._pending_updates(layer, ref, stats, values, others)
        if losses or updates:
            with self._mutation(g, layer):
                layer.record(losses, updates, self.settings.max_records_per_layer)
                self._commit(g, layers=[layer.id])
        return refs

    @staticmethod
    def _activity_losses(layer: Layer, y: np.ndarray) -> list[np.ndarray]:
        reg = parse_regularizer(layer.kind.config.get("activity_regularizer"), "activity_regularizer")
        if reg is None:
            return []
        batch = y.shape[0] if y.ndim else 1
        loss = reg(y)
        return [np.asarray(loss / loss.dtype.type(batch), dtype=y.dtype)]

    @staticmethod
    def _pending_updates(layer: Layer, ref: str, stats: Any, values: Any,
                         others: tuple[str, ...] = ()) -> list[PendingUpdate]:
        by_short = {layer.short_name(full): full for full in layer.variables}
        updates = []
        for short, stat, decay in stats:
            full = by_short[short]
            if stat.shape != values[full].shape:
                raise Conflict(f"layer {layer.name!r} produced an update of shape {list(stat.shape)} for "
                               f"{full} of shape {list(values[full].shape)}", code="incompatible_update")
            if decay is None:  # a plain assignment of the computed value
                updates.append(PendingUpdate(ref, full, stat.astype(values[full].dtype), others=others))
                continue
            pending = PendingUpdate(ref, full, np.empty(0), stat, decay)
            updates.append(PendingUpdate(ref, full, pending.new_value(values[full]), stat, decay, others))
        return updates

    # ---- weights -----------------------------------------------------------------------
    def get_weights(self, graph: str, ref: str) -> tuple[list[str], list[np.ndarray]]:
        names, arrays, _ = self.read_weights(graph, ref)
        return names, arrays

    def read_weights(self, graph: str, ref: str) -> tuple[list[str], list[np.ndarray], int]:
        """The weights and the layer version they are."""
        g, layer = self.layer(graph, ref)
        version = g.layer_version(layer)
        values = g.values
        names = layer.weights(g.variables)
        return names, [values[n] for n in names], version

    @_retried
    def set_weights(self, graph: str, ref: str, arrays: list[np.ndarray], if_match: int | None = None) -> Layer:
        g, layer = self.layer(graph, ref)
        with self._mutation(g):
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

    # ---- losses and updates ------------------------------------------------------------
    def losses(self, graph: str, ref: str) -> list[dict[str, Any]]:
        g, layer = self.layer(graph, ref)
        values = dict(g.values)
        return layer.all_losses(values) + self._output_losses(layer, values)

    def losses_for(self, graph: str, ref: str, refs: list[str] | None) -> list[dict[str, Any]]:
        g, layer = self.layer(graph, ref)
        values = dict(g.values)
        extra = self._output_losses(layer, values) if refs is None else []
        return layer.losses_for(refs, values) + extra

    def _output_losses(self, layer: Layer, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Unconditional losses a custom graph computes from the variables, evaluated now."""
        return [{"output": name, "value": value} for name, value in self.executor.weight_losses(layer, values)]

    def updates_for(self, graph: str, ref: str, refs: list[str] | None, everything: bool = False) -> list[PendingUpdate]:
        _, layer = self.layer(graph, ref)
        if everything:
            return layer.visible_updates()
        return [] if refs is None else layer.visible_updates(refs)

    @_retried
    def run_updates(self, graph: str, ref: str | None, refs: list[str] | None,
                    if_match: int | None = None) -> list[str]:
        """Apply the visible pending updates (of ``refs``, or all) in TF's order; consume them."""
        g = self.graph(graph)
        layers = [g.resolve(ref)] if ref is not None else list(g.layers.values())
        changed: dict[str, np.ndarray] = {}
        with self._mutation(g, *layers):
            if ref is not None:
                check_version(g, layers[0], if_match)
            for layer in layers:
                chosen = layer.visible_updates(refs)
                for update in chosen:
                    current = changed.get(update.variable, g.values[update.variable])
                    changed[update.variable] = update.new_value(current)
                layer.updates = type(layer.updates)(u for u in layer.updates if not any(u is c for c in chosen))
            g.set_values(changed)
            self._commit(g, variables=list(changed), layers=[layer.id for layer in layers])
        return list(changed)

    # ---- shapes, export ----------------------------------------------------------------
    def compute_output_shape(self, graph: str, ref: str, input_shape: list[Any]) -> list[int | None]:
        _, layer = self.layer(graph, ref)
        return list(layer.kind.compute_output_shape(_shape_arg(input_shape)))

    def export_onnx(self, graph: str, ref: str) -> bytes:
        g, layer = self.layer(graph, ref)
        if not layer.built or layer.build_shape is None or layer.dtype is None:
            raise Conflict(f"layer {layer.name!r} is not built yet: apply or build it first", code="not_built")
        shape = tuple(1 if d is None else d for d in layer.build_shape)
        sig = Signature(layer.dtype, shape, False, self._var_specs(g, layer))
        values = g.values
        return self.executor.export(layer, sig, {n: values[n] for n in layer.variables})

    # ---- views -------------------------------------------------------------------------
    def describe(self, graph: str, ref: str) -> dict[str, Any]:
        g, layer = self.layer(graph, ref)
        return self.view(g, layer)

    def version(self, graph: str, ref: str) -> int:
        g, layer = self.layer(graph, ref)
        return g.layer_version(layer)

    def list_layers(self, graph: str) -> list[dict[str, Any]]:
        g = self.graph(graph)
        return [self.view(g, layer) for layer in list(g.layers.values())]

    def global_variables(self, graph: str) -> list[dict[str, Any]]:
        g = self.graph(graph)
        return [v.to_json() for v in list(g.variables.values())]

    def variable_value(self, graph: str, name: str) -> tuple[dict[str, Any], np.ndarray]:
        g = self.graph(graph)
        values = g.values
        if name not in g.variables or name not in values:
            raise NotFound(f"graph {graph!r} has no variable {name[:200]!r}", code="variable_not_found")
        return g.variables[name].to_json(), values[name]

    def view(self, g: Graph, layer: Layer) -> dict[str, Any]:
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
            "providers": self.executor.sessions.active_providers(), "batching": layer.batching,
            "version": g.layer_version(layer),
        }

    # ---- persistence -------------------------------------------------------------------
    @contextmanager
    def _mutation(self, g: Graph, *touched: Layer) -> Iterator[None]:
        """Hold the graph's lock; when anything fails (a check or the store's commit), undo
        every change made in memory, so that a failed request changes nothing."""
        with g.lock:
            rollback = g.checkpoint(touched)
            try:
                yield
            except BaseException:
                rollback()
                raise

    def _commit(self, g: Graph, variables: list[str] | None = None, layers: list[str] | None = None) -> None:
        self.store.commit(g, variables or (), layers or ())


def _hoist(config: dict[str, Any], key: str, value: Any) -> Any:
    """``name``/``trainable``/``dtype`` may come at the top level or inside ``config``."""
    if key not in config:
        return value
    inner = config.pop(key)
    if value is not None and inner != value:
        raise InvalidArgument(f"{key} given twice with different values ({value!r} and {inner!r})",
                              code="invalid_argument")
    return inner


def _input_specs(layer: Layer) -> list[Any]:
    """One InputSpec (or None) per input."""
    spec = layer.input_spec()
    if isinstance(spec, list):
        return list(spec)
    return [spec] + [None] * (layer.kind.num_inputs - 1)


def _shape_list(shapes: object, n: int) -> list[tuple[int | None, ...]]:
    if not isinstance(shapes, list) or len(shapes) != n:
        raise InvalidArgument(f"this layer takes {n} inputs: input_shape must be a list of {n} shapes",
                              code="invalid_shape")
    return [_shape_arg(shape) for shape in shapes]


def _shape_arg(shape: object) -> tuple[int | None, ...]:
    if not isinstance(shape, (list, tuple)) or not shape or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31) for d in shape):
        raise InvalidArgument(f"input_shape must be a non-empty list of non-negative ints or nulls, got {shape!r}",
                              code="invalid_shape")
    return tuple(shape)
