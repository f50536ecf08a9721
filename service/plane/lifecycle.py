"""A layer's life: create, patch, delete, build (its variables made or shared), output shapes."""

from __future__ import annotations

from typing import Any

from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer, Variable, short_name
from layerserve.server.core.naming import LAYER_NAME, SCOPE_NAME, check_name
from layerserve.server.errors import Conflict, InvalidArgument
from layerserve.server.layers import kind_for
from layerserve.server.layers.base import VariableSpec
from layerserve.server.layers.kit.dtypes import normalize_dtype
from layerserve.server.layers.kit.names import to_snake_case
from layerserve.server.plane.graphs import GraphPlane
from layerserve.server.plane.transactions import check_version, retried
from layerserve.server.runtime.batching import parse_batching

__all__ = ["Lifecycle", "input_specs"]

# Argument errors TF raises before the layer takes a name (so no ``dense_N`` is used up).
_CHECKED_BEFORE_NAMING = ("unknown_argument", "missing_argument")


class Lifecycle(GraphPlane):
    """Creating, changing and building layers; each write is one store commit."""

    # ---- create, patch, delete ---------------------------------------------------------
    @retried
    def create_layer(self, graph: str, class_name: str, config: dict[str, Any], *, name: str | None = None,
                     trainable: bool | None = None, dtype: str | None = None, scope: str | None = None,
                     reuse: bool | str = False, batching: dict[str, Any] | None = None) -> Layer:
        config = dict(config)
        name = _hoist(config, "name", name)
        trainable = _hoist(config, "trainable", trainable)
        dtype = _hoist(config, "dtype", dtype)
        if name is not None:
            check_name(name, LAYER_NAME, "layer name")
        if scope is not None:
            check_name(scope, SCOPE_NAME, "scope")
        if not isinstance(trainable, bool) and trainable is not None:
            raise InvalidArgument("trainable must be true or false", code="invalid_argument", exception="TypeError")
        cls = kind_for(class_name)
        try:
            dtype = normalize_dtype(dtype)
            # An uploaded model is validated and loaded once in a child process, with a deadline.
            kind = self.executor.user_kind(cls, config) if cls.user_defined else cls.from_kwargs(config)
        except InvalidArgument as error:
            if name is None and error.code not in _CHECKED_BEFORE_NAMING and not cls.user_defined:
                self._use_up_name(graph, cls.class_name)
            raise
        overrides = parse_batching(batching or {})
        kind.check_layer_dtype(dtype)
        if not cls.user_defined:
            self.executor.check_loadable(kind.models_to_check())
        g = self.graph(graph, create=True)
        with self._mutation(g):
            g.check_layer_limit(self.settings.max_layers_per_graph)
            layer = g.new_layer(kind, name, trainable=True if trainable is None else trainable, dtype=dtype, scope=scope,
                                reuse=reuse)
            layer.batching = overrides
            self._commit(g)
        return layer

    def _use_up_name(self, graph: str, class_name: str) -> None:
        """TF names a layer in the base constructor, before the class checks its arguments."""
        g = self.graph(graph, create=True)
        with self._mutation(g):
            g.names.new_layer_name(to_snake_case(class_name))
            self._commit(g)

    @retried
    def patch_layer(self, graph: str, ref: str, *, trainable: bool | None = None,
                    batching: dict[str, Any] | None = None, if_match: int | None = None,
                    scope: str | None = None, reuse: bool | None = None) -> Layer:
        g, layer = self.layer(graph, ref)
        overrides = None if batching is None else parse_batching(batching)
        if scope is not None:
            check_name(scope, SCOPE_NAME, "scope")
        with self._mutation(g, layer):
            check_version(g, layer, if_match)
            if scope is not None:
                _fix_scope(layer, scope, reuse=bool(reuse))
            if trainable is not None:
                layer.trainable = trainable
            if overrides is not None:
                layer.batching = {**layer.batching, **overrides}
            self._commit(g)
        return layer

    @retried
    def delete_layer(self, graph: str, ref: str, if_match: int | None = None) -> str:
        """Delete the layer (and the variables no other layer shares); its id."""
        g, layer = self.layer(graph, ref)
        with self._mutation(g, layer):
            check_version(g, layer, if_match)
            del g.layers[layer.id]
            orphans = [n for n in layer.variables if not g.owners(n)]
            for name in orphans:
                del g.variables[name]
            g.drop_values(orphans)
            self._commit(g)
        self.executor.forget(layer.key)
        for listener in self.delete_listeners:
            listener(graph, layer)
        return layer.id

    # ---- build -------------------------------------------------------------------------
    @retried
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
        for index, (spec, each) in enumerate(zip(input_specs(layer), shapes, strict=False)):
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

    def _check_size(self, shape: tuple[int | None, ...], what: str) -> None:
        """Variables and outputs obey the tensor limit too: a huge ``units`` or input width
        must not make the server allocate what no request could carry."""
        count = 1
        for dim in shape:
            count *= 1 if dim is None else max(int(dim), 0)
        if count > self.settings.max_tensor_elements:
            raise InvalidArgument(f"{what} would have {count} elements, more than the limit of "
                                  f"{self.settings.max_tensor_elements} (--max-tensor-elements)", code="tensor_too_large")

    # ---- shapes ------------------------------------------------------------------------
    def compute_output_shape(self, graph: str, ref: str, input_shape: list[Any]) -> list[int | None]:
        _, layer = self.layer(graph, ref)
        return list(layer.kind.compute_output_shape(_shape_arg(input_shape)))


def _hoist(config: dict[str, Any], key: str, value: Any) -> Any:
    """``name``/``trainable``/``dtype`` may come at the top level or inside ``config``."""
    if key not in config:
        return value
    inner = config.pop(key)
    if value is not None and inner != value:
        raise InvalidArgument(f"{key} given twice with different values ({value!r} and {inner!r})",
                              code="invalid_argument")
    return inner


def input_specs(layer: Layer) -> list[Any]:
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


def _fix_scope(layer: Layer, scope: str, *, reuse: bool) -> None:
    """Graph mode names a layer's variable scope at its first call (nested scopes, reuse)."""
    if layer.scope is not None and (layer.scope != scope or layer.built):
        if layer.scope == scope:
            return
        raise Conflict(f"layer {layer.name!r} already has the variable scope {layer.scope!r}", code="scope_taken")
    layer.scope, layer.base_name, layer.fixed_scope, layer.reuse = scope, scope, True, reuse
