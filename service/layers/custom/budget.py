"""The validation budget of an uploaded model, checked before anything expands it.

ONNX shape inference (and ONNX Runtime) inline model-local functions: a model of a few hundred
bytes whose functions each call the next one twice becomes 2^depth nodes, and that expansion
runs holding the GIL. So the node count after inlining (subgraphs included) and the nesting
depth of calls and subgraphs are computed here first, in time linear in the model's size (each
function is measured once). So are the edges (every node's inputs and outputs, after inlining):
shape inference merges each input's dims into the node's, so one ``Concat`` of 10^5 inputs is
one node but 10^5 merges of however many dims its input has. After inference, every shape it
could compute must fit the tensor limit, so that no constant or intermediate bigger than any
request could carry is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from layerserve.server.errors import LayerServeError
from layerserve.server.layers.custom.framing import subgraphs
from layerserve.server.layers.custom.spec import bad

__all__ = ["ModelBudget", "Size", "check_inference_time", "check_inferred_sizes"]


@dataclass(frozen=True)
class Size:
    """What a graph, a function or a node costs once inlined."""

    nodes: int = 0
    edges: int = 0  # inputs and outputs of every node
    depth: int = 0

    def __add__(self, other: Size) -> Size:
        return Size(self.nodes + other.nodes, self.edges + other.edges, max(self.depth, other.depth))


def _custom_layer_refusal(message: str) -> LayerServeError:
    return bad("config.model", message)


@dataclass
class ModelBudget:
    max_nodes: int
    max_depth: int
    # CPU seconds shape inference may take: the server repeats it in-process (holding the GIL)
    # for every new input signature, so only validation itself may run longer (in a child).
    max_inference_s: float | None = None
    max_edges: int | None = None
    # How a refusal reads: the flags named, and the error raised (a custom layer's by default).
    nodes_flag: str = "--max-model-nodes"
    edges_flag: str = "--max-model-edges"
    refuse: Callable[[str], LayerServeError] = _custom_layer_refusal
    _functions: dict[tuple[str, str], onnx.FunctionProto] = field(default_factory=dict)
    _measured: dict[tuple[str, str], Size] = field(default_factory=dict)
    _open: set[tuple[str, str]] = field(default_factory=set)

    def check(self, model: onnx.ModelProto) -> Size:
        """4xx when the model, once inlined, has more nodes, more edges or deeper nesting than
        allowed; else its size."""
        self._functions = {(f.domain, f.name): f for f in model.functions}
        self._measured, self._open = {}, set()
        size = self._graph(list(model.graph.node))
        self._within(size)
        return size

    def _within(self, size: Size) -> None:
        if size.nodes > self.max_nodes:
            raise self.refuse(f"expands to more than {self.max_nodes} nodes once its functions are "
                              f"inlined ({self.nodes_flag})")
        if self.max_edges is not None and size.edges > self.max_edges:
            raise self.refuse(f"has more than {self.max_edges} node inputs and outputs once its functions are "
                              f"inlined ({self.edges_flag})")
        if size.depth > self.max_depth:
            raise self.refuse(f"nests functions and subgraphs more than {self.max_depth} deep (--max-model-depth)")

    def _graph(self, nodes: list[onnx.NodeProto]) -> Size:
        """Plain nodes are counted inline (a program may have 10^5 of them); calls and subgraphs
        are measured apart. Checked as it grows: refused before the rest is even read."""
        count = edges = depth = 0
        for node in nodes:
            edges += len(node.input) + len(node.output)
            if (node.domain, node.op_type) in self._functions or (node.attribute and subgraphs(node)):
                inner = self._nested(node)
                count, edges, depth = count + inner.nodes, edges + inner.edges, max(depth, inner.depth)
            else:
                count += 1
            if count > self.max_nodes or (self.max_edges is not None and edges > self.max_edges) \
                    or depth > self.max_depth:
                self._within(Size(count, edges, depth))
        return Size(count, edges, depth)

    def _nested(self, node: onnx.NodeProto) -> Size:
        """What a call (its function's body, in place of the call) or a node's subgraphs add."""
        key = (node.domain, node.op_type)
        size = self._function(key) if key in self._functions else Size(1)
        for sub in subgraphs(node):
            inner = self._graph(list(sub.node))
            size += Size(inner.nodes, inner.edges, inner.depth + 1)
        return size

    def _function(self, key: tuple[str, str]) -> Size:
        if key in self._measured:
            return self._measured[key]
        if key in self._open:
            raise self.refuse(f"function {key[1]!r} calls itself; ONNX functions cannot recurse")
        self._open.add(key)
        inner = self._graph(list(self._functions[key].node))
        self._open.discard(key)
        self._measured[key] = Size(inner.nodes, inner.edges, inner.depth + 1)
        return self._measured[key]


def check_inference_time(budget: ModelBudget, seconds: float) -> None:
    if budget.max_inference_s is not None and seconds > budget.max_inference_s:
        raise bad("config.model", f"takes {seconds:.2f} s of CPU in ONNX shape inference, more than the limit of "
                                  f"{budget.max_inference_s:g} s (--max-model-inference-s): the server repeats it "
                                  "for every input signature")


def _static_elements(info: onnx.ValueInfoProto) -> int | None:
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    count = 1
    for dim in tensor.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        count *= max(dim.dim_value, 0)
    return count


def check_inferred_sizes(model: onnx.ModelProto, max_elements: int) -> None:
    """Every value whose shape inference could compute: within the tensor limit."""
    graph = model.graph
    for info in [*graph.value_info, *graph.output]:
        count = _static_elements(info)
        if count is not None and count > max_elements:
            raise bad("config.model", f"value {info.name!r} would have {count} elements, more than the limit of "
                                      f"{max_elements} (--max-tensor-elements)")
