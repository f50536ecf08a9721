"""Variables and variable scopes (TF1's ``variable_scope`` / ``get_variable`` semantics).

A variable is a hosted variable of the server graph, read in programs by a ``ReadVariable``
node; ``assign`` records an ``Assign`` node whose value the server commits after the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from layerserve.compat.v1 import math_ops
from layerserve.compat.v1.dtypes import DType, as_dtype
from layerserve.compat.v1.graph import DOMAIN, Graph, GraphKeys, Operation, Tensor, TensorShape, get_default_graph
from layerserve.compat.v1.server import binding

__all__ = ["AUTO_REUSE", "Variable", "VariableScope", "VariableScopeStore", "assign", "assign_add", "assign_sub",
           "get_variable", "get_variable_scope", "global_variables", "global_variables_initializer",
           "local_variables_initializer", "trainable_variables", "variable_scope", "variables_initializer"]


class _AutoReuse:
    def __repr__(self) -> str:
        return "_ReuseMode.AUTO_REUSE"


AUTO_REUSE: Any = _AutoReuse()


class VariableScope:
    def __init__(self, reuse: Any, name: str = "", initializer: Any = None, regularizer: Any = None,
                 dtype: Any = None, original_name_scope: str = "") -> None:
        self.reuse, self.name, self.initializer, self.regularizer = reuse, name, initializer, regularizer
        self.dtype = as_dtype(dtype) if dtype is not None else None
        self.original_name_scope = original_name_scope

    def reuse_variables(self) -> None:
        self.reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self.initializer = initializer

    def set_regularizer(self, regularizer: Any) -> None:
        self.regularizer = regularizer

    def get_variable(self, name: str, *args: Any, **kwargs: Any) -> Variable:
        return get_variable(name, *args, **kwargs)


class VariableScopeStore:
    """Per graph: the current scope, the variables by name, how often each scope was opened."""

    def __init__(self) -> None:
        self.current = VariableScope(False)
        self.variables: dict[str, Variable] = {}
        self.scope_counts: dict[str, int] = {}

    def open(self, name: str) -> None:
        self.scope_counts[name] = self.scope_counts.get(name, 0) + 1

    def close_subscopes(self, name: str) -> None:
        prefix = name + "/"
        for key in self.scope_counts:
            if key.startswith(prefix):
                self.scope_counts[key] = 0

    def unique_scope(self, prefix: str, base: str) -> str:
        """TF's ``_get_unique_variable_scope``: ``base``, ``base_1``, ... under ``prefix``."""
        full = f"{prefix}/{base}" if prefix else base
        if self.scope_counts.get(full, 0) == 0:
            return base
        idx = 1
        while self.scope_counts.get(f"{full}_{idx}", 0) > 0:
            idx += 1
        return f"{base}_{idx}"


def _store() -> VariableScopeStore:
    return get_default_graph().var_store


def get_variable_scope() -> VariableScope:
    return _store().current


@contextlib.contextmanager
def variable_scope(name_or_scope: Any = None, default_name: str | None = None, values: Any = None,
                   initializer: Any = None, regularizer: Any = None, caching_device: Any = None,
                   partitioner: Any = None, custom_getter: Any = None, reuse: Any = None, dtype: Any = None,
                   use_resource: Any = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Iterator[VariableScope]:
    if name_or_scope is None and default_name is None:
        raise TypeError("If default_name is None then name_or_scope is required")
    if reuse is False:
        reuse = None
    g, store = get_default_graph(), _store()
    old = store.current
    if isinstance(name_or_scope, VariableScope):
        full, short = name_or_scope.name, name_or_scope.name.rsplit("/", 1)[-1]
        parent_reuse = name_or_scope.reuse
        template = name_or_scope
    else:
        short = name_or_scope if name_or_scope is not None else store.unique_scope(old.name, str(default_name))
        full = f"{old.name}/{short}" if old.name else short
        parent_reuse = old.reuse
        template = old
    new_reuse = AUTO_REUSE if reuse is AUTO_REUSE or (reuse is None and parent_reuse is AUTO_REUSE) \
        else bool(reuse) or bool(parent_reuse)
    saved_counts = dict(store.scope_counts)
    store.open(full)
    with contextlib.ExitStack() as stack:
        if auxiliary_name_scope and short:
            ns = stack.enter_context(g.name_scope(short))
        else:
            ns = f"{g.get_name_scope()}/" if g.get_name_scope() else ""
        scope = VariableScope(new_reuse, full, initializer or template.initializer,
                              regularizer or template.regularizer, dtype or template.dtype, ns)
        store.current = scope
        try:
            yield scope
        finally:
            store.current = old
            if isinstance(name_or_scope, VariableScope):
                store.scope_counts = saved_counts | {full: store.scope_counts.get(full, 0)}
            else:
                store.close_subscopes(full)


class Variable(Tensor):
    """A hosted variable; as a tensor it is its value (``name:0`` read in the run).

    ``tf.Variable(initial_value, trainable=True, name=None, dtype=None)`` creates one named in the
    current name scope (``Variable``, ``Variable_1``, ...); ``get_variable`` and layers make theirs
    with ``Variable.hosted``."""

    def __init__(self, initial_value: Any = None, trainable: bool | None = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None, variable_def: Any = None, dtype: Any = None,
                 expected_shape: Any = None, import_scope: Any = None, constraint: Any = None,
                 use_resource: Any = None, synchronization: Any = None, aggregation: Any = None,
                 shape: Any = None) -> None:
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        g = get_default_graph()
        value, dt = _initial_value(name or "Variable", None, as_dtype(dtype) if dtype is not None else None,
                                   initial_value() if callable(initial_value) and not isinstance(
                                       initial_value, Tensor) else initial_value)
        full = g.unique_name(name or "Variable", mark_as_used=False)
        trainable = True if trainable is None else bool(trainable)
        binding(g).create_variable(f"{full}:0", value, trainable=trainable)
        with g.name_scope(None):
            self._setup(g, full, dt, tuple(value.shape), trainable=trainable, initial_value=value)
        track(g, self)

    @classmethod
    def hosted(cls, graph: Graph, name: str, dtype: DType, shape: tuple[int, ...], *, trainable: bool,
               initial_value: np.ndarray | None = None) -> Variable:
        """A Variable object for a variable the server already holds."""
        var = cls.__new__(cls)
        var._setup(graph, name, dtype, shape, trainable=trainable, initial_value=initial_value)
        return var

    def _setup(self, graph: Graph, name: str, dtype: DType, shape: tuple[int, ...], *, trainable: bool,
               initial_value: np.ndarray | None = None) -> None:
        operation = graph.new_operation("VarHandleOp", name, [])
        operation.control_inputs = []
        if operation.name != name:  # TF's variable names are exact; unique_name only marks them used
            graph.operations.pop(operation.name)
            operation.name = name
            graph.operations[name] = operation
        Tensor.__init__(self, graph, f"{name}:0", dtype, TensorShape(list(shape)), operation)
        operation.outputs.append(self)
        graph.record(operation, "ReadVariable", [], [self.name], domain=DOMAIN, variable=self.name)
        self.trainable = trainable
        self._initial = initial_value
        self._initializer_op: Operation | None = None

    @property
    def shape(self) -> TensorShape:
        return self._shape

    @property
    def initializer(self) -> Operation:
        return _initializer(self.graph, self)

    def _as_graph_element(self) -> Tensor:
        return self

    def value(self) -> Tensor:
        return self

    def read_value(self) -> Tensor:
        return math_ops.identity(self, name="read")

    @property
    def initial_value(self) -> Tensor:
        if self._initial is None:
            raise ValueError(f"the initial value of {self.name} is computed by the server")
        return math_ops.constant(self._initial)

    def assign(self, value: Any, use_locking: bool = False, name: str | None = None,
               read_value: bool = True) -> Tensor:
        return assign(self, value, name=name)

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        return assign_add(self, delta, name=name)

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        return assign_sub(self, delta, name=name)

    def load(self, value: Any, session: Any = None) -> None:
        from layerserve.compat.v1.session import get_default_session

        (session or get_default_session()).run(self.assign(np.asarray(value, dtype=self.dtype.as_numpy_dtype)))

    def eval(self, feed_dict: Any = None, session: Any = None) -> Any:
        return super().eval(feed_dict, session)

    def get_shape(self) -> TensorShape:
        return self._shape

    def __repr__(self) -> str:
        return f"<tf.Variable '{self.name}' shape={self._shape} dtype={self.dtype}>"


def _new_value_op(variable: Variable, value: Tensor, name: str) -> Tensor:
    """An Assign node: after the run, the server commits ``value`` as the variable's value."""
    if value.dtype != variable.dtype:
        raise TypeError(f"Input 'value' of 'AssignVariableOp' Op has type {value.dtype} that does not match type "
                        f"{variable.dtype} of argument 'resource'.")
    if value.shape.dims is not None and variable.shape.dims is not None and not TensorShape(
            value.shape.dims).is_compatible_with([d or 0 for d in variable.shape.dims]) and all(
            d is not None for d in value.shape.dims) and value.shape.dims != variable.shape.dims:
        raise ValueError(f"Shapes {variable.shape} and {value.shape} are incompatible")
    result = math_ops.op("Assign", [value], name, "AssignVariableOp", domain=DOMAIN,
                         out=(variable.dtype, variable.shape), variable=variable.name)
    assert result.op is not None
    result.op.stateful, result.op.writes = True, variable.name
    return result


def _variable(ref: Any) -> Variable:
    if not isinstance(ref, Variable):
        raise TypeError(f"assign needs a variable, got {type(ref).__name__}")
    return ref


def assign(ref: Any, value: Any, validate_shape: Any = None, use_locking: Any = None,
           name: str | None = None) -> Tensor:
    var = _variable(ref)
    return _new_value_op(var, math_ops.convert_to_tensor(value, like=var), name or "Assign")


def assign_add(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> Tensor:
    var = _variable(ref)
    with math_ops.composite(name, "AssignAddVariableOp") as scope:
        return _new_value_op(var, math_ops.add(var, math_ops.convert_to_tensor(value, like=var)), scope)


def assign_sub(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> Tensor:
    var = _variable(ref)
    with math_ops.composite(name, "AssignSubVariableOp") as scope:
        return _new_value_op(var, math_ops.subtract(var, math_ops.convert_to_tensor(value, like=var)), scope)


# ---- get_variable ----------------------------------------------------------------------------
def _tf_shape(shape: Any) -> str:
    return str(tuple(shape))


def _initial_value(name: str, shape: Any, dtype: DType | None, initializer: Any) -> tuple[np.ndarray, DType]:
    if isinstance(initializer, Tensor):
        value = initializer.graph.const_value(initializer.name)
        if value is None:
            raise ValueError(f"the initializer of {name} must be a constant (tf.constant or a numpy value)")
        return np.asarray(value), as_dtype(value.dtype)
    if isinstance(initializer, (np.ndarray, np.generic, list, tuple, float, int)) and not callable(initializer):
        array = math_ops._numpy_value(initializer, dtype)  # Python floats become float32, as in TF
        return array, as_dtype(array.dtype)
    if shape is None:
        raise ValueError(f"Shape of a new variable ({name}) must be fully defined, but instead was None.")
    dims = tuple(int(d) for d in shape)
    dt = dtype or as_dtype("float32")
    if initializer is None:
        initializer = _default_initializer(dt)
    value = initializer(dims, dt) if not isinstance(initializer, type) else initializer()(dims, dt)
    return np.asarray(value, dtype=dt.as_numpy_dtype).reshape(dims), dt


def _default_initializer(dtype: DType) -> Callable[..., np.ndarray]:
    from layerserve.compat.v1.initializers import glorot_uniform_initializer, zeros_initializer

    return glorot_uniform_initializer() if dtype.is_floating else zeros_initializer()


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None, regularizer: Any = None,
                 trainable: bool | None = None, collections: Any = None, caching_device: Any = None,
                 partitioner: Any = None, validate_shape: bool = True, use_resource: Any = None,
                 custom_getter: Any = None, constraint: Any = None, synchronization: Any = None,
                 aggregation: Any = None) -> Variable:
    g, store = get_default_graph(), _store()
    scope = store.current
    full = f"{scope.name}/{name}" if scope.name else name
    existing = store.variables.get(full)
    if existing is not None and scope.reuse is not False:
        if shape is not None and list(existing.shape.dims or []) != [int(d) for d in shape]:
            raise ValueError(f"Trying to share variable {full}, but specified shape {_tf_shape(shape)} and found "
                             f"shape {_tf_shape(existing.shape.dims or [])}.")
        return existing
    if existing is not None:
        raise ValueError(f"Variable {full} already exists, disallowed. Did you mean to set reuse=True or "
                         "reuse=tf.AUTO_REUSE in VarScope?")
    if scope.reuse is True:
        raise ValueError(f"Variable {full} does not exist, or was not created with tf.get_variable(). Did you mean "
                         "to set reuse=tf.AUTO_REUSE in VarScope?")
    dt = as_dtype(dtype) if dtype is not None else scope.dtype
    value, dt = _initial_value(full, shape, dt, initializer if initializer is not None else scope.initializer)
    if shape is not None and list(value.shape) != [int(d) for d in shape]:
        value = np.broadcast_to(value, tuple(int(d) for d in shape)).copy()
    trainable = True if trainable is None else bool(trainable)
    binding(g).create_variable(f"{full}:0", value, trainable=trainable)
    with g.name_scope(None):
        var = Variable.hosted(g, full, dt, tuple(value.shape), trainable=trainable, initial_value=value)
    track(g, var, collections)
    reg = regularizer if regularizer is not None else scope.regularizer
    if reg is not None:
        with g.name_scope(f"{full}/Regularizer/"):
            loss = reg(var)
        if loss is not None:
            g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
    return var


def track(g: Graph, var: Variable, collections: Any = None) -> None:
    """Enter a new variable in the store and its collections (creation order)."""
    g.var_store.variables[var.name[:-2]] = var
    keys = list(collections) if collections is not None else [GraphKeys.GLOBAL_VARIABLES]
    if var.trainable and GraphKeys.TRAINABLE_VARIABLES not in keys:
        keys.append(GraphKeys.TRAINABLE_VARIABLES)
    for key in keys:
        g.add_to_collection(key, var)


def global_variables(scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def variables_initializer(var_list: Any, name: str = "init") -> Operation:
    """An op that sets each variable to its initial value: the value it was created with, or, for a
    layer's variable, its initializer's (drawn again when random, as TF does)."""
    g = get_default_graph()
    with g.control_dependencies(None), g.name_scope(None):
        ops = [_initializer(g, v) for v in var_list if isinstance(v, Variable)]
        with g.control_dependencies(ops):
            return math_ops.no_op(name=name)


def _initializer(g: Graph, var: Variable) -> Operation:
    """One variable's initializing assign (cached: every initializer op of the graph shares it)."""
    found = g.initializers.get(var.name)
    if found is not None:
        return found
    if var._initial is not None:
        value = math_ops.constant(var._initial, _hidden=True, _graph=g)
        t = math_ops.op("Assign", [value], f"{var.name[:-2]}/Assign", "AssignVariableOp", domain=DOMAIN,
                        out=(var.dtype, var.shape), variable=var.name)
    else:  # a layer's variable: the server knows its initializer
        t = math_ops.op("InitVariable", [], f"{var.name[:-2]}/Assign", "AssignVariableOp", domain=DOMAIN,
                        out=(var.dtype, var.shape), variable=var.name)
    assert t.op is not None
    t.op.stateful, t.op.writes = True, var.name
    g.initializers[var.name] = t.op
    return t.op


def global_variables_initializer() -> Operation:
    return variables_initializer(global_variables())


def local_variables_initializer() -> Operation:
    return variables_initializer(local_variables(), name="init_1")

