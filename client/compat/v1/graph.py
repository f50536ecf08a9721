"""TF1's graph: operations with TF's names, symbolic tensors with static shapes, name scopes,
control dependencies and collections, on top of the ONNX recorder custom layers use
(``layerserve._tracing``): every op records ONNX nodes, named by TF's tensor names."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from layerserve._tracing import Node, Trace
from layerserve._tracing import Tensor as TraceTensor
from layerserve.compat.v1.dtypes import DType

__all__ = ["DOMAIN", "Graph", "GraphKeys", "Operation", "Tensor", "TensorShape", "add_to_collection",
           "control_dependencies", "get_collection", "get_collection_ref", "get_default_graph", "name_scope",
           "reset_default_graph"]

DOMAIN = "ai.layerserve"  # the server expands nodes of this domain (layer calls, variables, assigns)


class TensorShape:
    """A static shape: a list of ints and Nones, or None for an unknown rank."""

    def __init__(self, dims: Sequence[int | None] | None) -> None:
        self.dims = None if dims is None else [None if d is None or int(d) < 0 else int(d) for d in dims]

    @property
    def ndims(self) -> int | None:
        return None if self.dims is None else len(self.dims)

    rank = ndims

    def as_list(self) -> list[int | None]:
        if self.dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self.dims)

    def is_fully_defined(self) -> bool:
        return self.dims is not None and all(d is not None for d in self.dims)

    def is_compatible_with(self, shape: Sequence[int]) -> bool:
        if self.dims is None:
            return True
        return len(shape) == len(self.dims) and all(d is None or d == s for d, s in zip(self.dims, shape))

    def __len__(self) -> int:
        return len(self.as_list())

    def __iter__(self) -> Iterator[int | None]:
        return iter(self.as_list())

    def __getitem__(self, key: Any) -> Any:
        return self.as_list()[key]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TensorShape):
            return self.dims == other.dims
        if isinstance(other, (list, tuple)):
            return self.dims == list(other)
        return False

    def __repr__(self) -> str:
        return "TensorShape(None)" if self.dims is None else f"TensorShape({self.dims})"

    def __str__(self) -> str:
        if self.dims is None:
            return "<unknown>"
        return str(tuple(self.dims)) if len(self.dims) != 1 else f"({self.dims[0]},)"


class Operation:
    """A node of the graph; ``run`` it (or fetch it: None) through a Session."""

    def __init__(self, graph: Graph, name: str, op_type: str, inputs: list[Tensor],
                 control_inputs: list[Operation]) -> None:
        self.graph, self.name, self.type = graph, name, op_type
        self.inputs = list(inputs)
        self.control_inputs = list(control_inputs)
        self.outputs: list[Tensor] = []
        self.nodes: list[Node] = []  # the ONNX nodes that compute it
        self.stateful = False  # writes a variable: must run when reached
        self.deps: list[Tensor] = []  # values it reads besides its inputs (a layer's variables)
        self.writes: str | None = None  # the variable whose new value its output is (an assign)

    def run(self, feed_dict: Any = None, session: Any = None) -> None:
        from layerserve.compat.v1.session import get_default_session

        (session or get_default_session()).run(self, feed_dict)

    def __repr__(self) -> str:
        return f"<tf.Operation '{self.name}' type={self.type}>"


class Tensor(TraceTensor):
    """A symbolic tensor named as TF names it (``scope/op:0``), with a static ``shape``."""

    trace: Graph

    def __init__(self, graph: Graph, name: str, dtype: DType, shape: TensorShape, op: Operation | None) -> None:
        super().__init__(graph, name, dtype, per_apply=True)
        self.dtype: DType = dtype  # type: ignore[assignment]
        self._shape = shape
        self.op = op  # type: ignore[assignment]
        self.value_index = 0

    @property
    def graph(self) -> Graph:
        return self.trace

    @property
    def shape(self) -> TensorShape:
        return self._shape

    def get_shape(self) -> TensorShape:
        return self._shape

    def set_shape(self, shape: Any) -> None:
        self._shape = TensorShape(list(shape))

    @property
    def device(self) -> str:
        return ""

    def eval(self, feed_dict: Any = None, session: Any = None) -> Any:
        from layerserve.compat.v1.session import get_default_session

        return (session or get_default_session()).run(self, feed_dict)

    def __repr__(self) -> str:
        return f'<tf.Tensor \'{self.name}\' shape={self._shape} dtype={self.dtype}>'

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise TypeError("Using a `tf.Tensor` as a Python `bool` is not allowed. Use `if t is not None:` instead of "
                        "`if t:` to test if a tensor is defined, and use TensorFlow ops such as tf.cond to execute "
                        "subgraphs conditioned on the value of a tensor.")

    # The operators are TF's (math.py); defined there to keep one vocabulary.
    def _binary(self, op_type: str, other: Any, reverse: bool = False) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.binary(op_type, other, self) if reverse else math_ops.binary(op_type, self, other)

    def __truediv__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.truediv(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.truediv(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.floordiv(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.floordiv(other, self)

    def __mod__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.floormod(self, other)

    def __matmul__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.negative(self)

    def __abs__(self) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.abs(self)

    def __lt__(self, other: Any) -> Tensor:
        return self._binary("Less", other)

    def __le__(self, other: Any) -> Tensor:
        return self._binary("LessOrEqual", other)

    def __gt__(self, other: Any) -> Tensor:
        return self._binary("Greater", other)

    def __ge__(self, other: Any) -> Tensor:
        return self._binary("GreaterOrEqual", other)

    def __and__(self, other: Any) -> Tensor:
        return self._binary("And", other)

    def __or__(self, other: Any) -> Tensor:
        return self._binary("Or", other)

    def __invert__(self) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.logical_not(self)

    def __getitem__(self, index: Any) -> Tensor:
        from layerserve.compat.v1 import math_ops

        return math_ops.strided_slice(self, index)

    def __iter__(self) -> Iterator[Tensor]:
        dims = self._shape.dims
        if not dims or dims[0] is None:
            raise TypeError("Tensor objects are only iterable when eager execution is enabled. To iterate over this "
                            "tensor use tf.map_fn.")
        return iter([self[i] for i in range(dims[0])])


class GraphKeys:
    GLOBAL_VARIABLES = "variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    UPDATE_OPS = "update_ops"
    REGULARIZATION_LOSSES = "regularization_losses"
    LOSSES = "losses"
    GLOBAL_STEP = "global_step"
    TRAIN_OP = "train_op"
    SUMMARIES = "summaries"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    INIT_OP = "init_op"
    ACTIVATIONS = "activations"


class Graph(Trace):
    """``tf.Graph``: ops by unique name, scopes, collections; the server graph it runs on."""

    def __init__(self) -> None:
        super().__init__()
        self._names_in_use: dict[str, int] = {}
        self._name_stack = ""
        self._control_stack: list[list[Operation]] = []
        self._collections: dict[str, list[Any]] = {}
        self.operations: dict[str, Operation] = {}
        self.version = 0  # moves with every op; sessions key their programs by content, not by it
        from layerserve.compat.v1.variables import VariableScopeStore

        self.var_store = VariableScopeStore()
        self.binding: Any = None  # the server graph, bound at first use (see server.py)
        self.layer_calls: dict[str, Any] = {}
        self.initializers: dict[str, Operation] = {}  # variable -> its initializing assign

    # ---- names ---------------------------------------------------------------------------
    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        """TF's ``Graph.unique_name``: in the current name scope, made unique ignoring case."""
        if self._name_stack:
            name = f"{self._name_stack}/{name}"
        key = name.lower()
        i = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = i + 1
        if i > 0:
            base = key
            while key in self._names_in_use:
                key = f"{base}_{i}"
                i += 1
            if mark_as_used:
                self._names_in_use[key] = 1
            name = f"{name}_{i - 1}"
        return name

    def get_name_scope(self) -> str:
        return self._name_stack

    @contextlib.contextmanager
    def name_scope(self, name: str | None) -> Iterator[str]:
        old = self._name_stack
        if not name:
            new = ""
        elif name.endswith("/"):
            new = name[:-1]
        else:
            new = self.unique_name(name)
        self._name_stack = new
        try:
            yield f"{new}/" if new else ""
        finally:
            self._name_stack = old

    # ---- control dependencies ----------------------------------------------------------
    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: Sequence[Any] | None) -> Iterator[None]:
        if control_inputs is None:  # clears the dependencies, as in TF
            saved, self._control_stack = self._control_stack, []
            try:
                yield
            finally:
                self._control_stack = saved
            return
        ops = [as_operation(c, self) for c in control_inputs]
        self._control_stack.append(ops)
        try:
            yield
        finally:
            self._control_stack.pop()

    def current_control_inputs(self) -> list[Operation]:
        return [op for level in self._control_stack for op in level]

    def value_after_dependencies(self, t: Tensor) -> Tensor:
        """A variable read inside ``control_dependencies`` on writes of that variable reads the
        value they write (the last one named), as TF's reads made under the dependencies do."""
        if t.op is None or t.op.type != "VarHandleOp" or not self._control_stack:
            return t
        found: Tensor | None = None
        seen: set[int] = set()
        stack = list(reversed(self.current_control_inputs()))
        while stack:
            op = stack.pop()
            if id(op) in seen:
                continue
            seen.add(id(op))
            if op.writes == t.name and op.outputs:
                found = op.outputs[0]
            elif not op.outputs:  # a group: its dependencies run first
                stack.extend(reversed(op.control_inputs))
        return found if found is not None else t

    # ---- ops -----------------------------------------------------------------------------
    def new_operation(self, op_type: str, name: str, inputs: Sequence[Tensor]) -> Operation:
        """An Operation named ``name`` (made unique in the current name scope)."""
        for t in inputs:
            if t.graph is not self:
                raise ValueError(f"Tensor {t.name!r} must be from the same graph as the other inputs of {name!r}.")
        op = Operation(self, self.unique_name(name), op_type, list(inputs), self.current_control_inputs())
        self.operations[op.name] = op
        self.version += 1
        return op

    def add_output(self, op: Operation, dtype: DType, shape: TensorShape, index: int | None = None) -> Tensor:
        k = len(op.outputs) if index is None else index
        t = Tensor(self, f"{op.name}:{k}", dtype, shape, op)
        t.value_index = k
        op.outputs.append(t)
        return t

    def record(self, op: Operation, op_type: str, inputs: Sequence[Tensor | str], outputs: Sequence[str],
               domain: str = "", **attrs: Any) -> None:
        """An ONNX node computing part of ``op``."""
        names = [i if isinstance(i, str) else i.name for i in inputs]
        node = Node(op_type, names, list(outputs), attrs)
        if domain:
            node.attrs["__domain__"] = domain
        op.nodes.append(node)
        self.nodes.append(node)

    def const_value(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    # ---- lookups -------------------------------------------------------------------------
    def get_operation_by_name(self, name: str) -> Operation:
        if name not in self.operations:
            raise KeyError(f"The name '{name}' refers to an Operation not in the graph.")
        return self.operations[name]

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, _, index = name.partition(":")
        if not index.isdigit():
            raise ValueError(f"The name '{name}' looks a like an Operation name, not a Tensor name. Tensor names "
                             "must be of the form \"<op_name>:<output_index>\".")
        op = self.operations.get(op_name)
        if op is None or int(index) >= len(op.outputs):
            raise KeyError(f"The name '{name}' refers to a Tensor which does not exist. The operation, '{op_name}', "
                           "does not exist in the graph.")
        return op.outputs[int(index)]

    def as_graph_element(self, obj: Any) -> Tensor | Operation:
        if isinstance(obj, str):
            return self.get_tensor_by_name(obj) if ":" in obj else self.get_operation_by_name(obj)
        element = getattr(obj, "_as_graph_element", lambda: obj)()
        if isinstance(element, (Tensor, Operation)):
            if element.graph is not self:
                raise ValueError(f"Tensor {element} is not an element of this graph.")
            return element
        raise TypeError(f"Can not convert a {type(obj).__name__} into a Tensor or Operation.")

    def get_operations(self) -> list[Operation]:
        return list(self.operations.values())

    # ---- collections ---------------------------------------------------------------------
    def add_to_collection(self, name: str, value: Any) -> None:
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names: Sequence[str], value: Any) -> None:
        for name in [names] if isinstance(names, str) else names:
            self.add_to_collection(name, value)

    def get_collection_ref(self, name: str) -> list[Any]:
        return self._collections.setdefault(name, [])

    def get_collection(self, name: str, scope: str | None = None) -> list[Any]:
        import re

        items = list(self._collections.get(name, []))
        if scope is None:
            return items
        pattern = re.compile(scope)
        return [i for i in items if hasattr(i, "name") and pattern.match(i.name)]

    def get_all_collection_keys(self) -> list[str]:
        return list(self._collections)

    # ---- default graph -------------------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        _stack().append(self)
        try:
            yield self
        finally:
            _stack().pop()

    def finalize(self) -> None:
        pass

    @property
    def finalized(self) -> bool:
        return False


def as_operation(value: Any, graph: Graph) -> Operation:
    element = graph.as_graph_element(value)
    return element if isinstance(element, Operation) else element.op  # type: ignore[return-value]


class _DefaultGraph(threading.local):
    def __init__(self) -> None:
        self.stack: list[Graph] = []


_local = _DefaultGraph()
_global_default: list[Graph] = []


def _stack() -> list[Graph]:
    return _local.stack


def get_default_graph() -> Graph:
    stack = _stack()
    if stack:
        return stack[-1]
    if not _global_default:
        _global_default.append(Graph())
    return _global_default[0]


def reset_default_graph() -> None:
    if _stack():
        raise AssertionError("Do not use tf.reset_default_graph() to clear nested graphs. If you need a cleared "
                             "graph, exit the nesting and create a new graph.")
    _global_default[:] = [Graph()]


def name_scope(name: str | None, default_name: str | None = None, values: Any = None) -> Any:
    """``tf.name_scope`` (v1 signature)."""
    return get_default_graph().name_scope(name if name is not None else default_name)


def control_dependencies(control_inputs: Sequence[Any] | None) -> Any:
    return get_default_graph().control_dependencies(control_inputs)


def add_to_collection(name: str, value: Any) -> None:
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names: Sequence[str], value: Any) -> None:
    get_default_graph().add_to_collections(names, value)


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key: str) -> list[Any]:
    return get_default_graph().get_collection_ref(key)

