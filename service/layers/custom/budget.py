"""The validation budget of an uploaded model, checked before anything expands it.

ONNX shape inference (and ONNX Runtime) inline model-local functions: a model of a few hundred
bytes whose functions each call the next one twice becomes 2^depth nodes, and that expansion
runs holding the GIL. So the node count after inlining (subgraphs included) and the nesting
depth of calls and subgraphs are computed here first, in time linear in the model's size (each
function is measured once). After inference, every shape it could compute must fit the tensor
limit, so that no constant or intermediate bigger than any request could carry is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from layerserve.server.layers.custom.framing import subgraphs
from layerserve.server.layers.custom.spec import bad

__all__ = ["ModelBudget", "check_inference_time", "check_inferred_sizes"]


@dataclass
class ModelBudget:
    max_nodes: int
    max_depth: int
    # CPU seconds shape inference may take: the server repeats it in-process (holding the GIL)
    # for every new input signature, so only validation itself may run longer (in a child).
    max_inference_s: float | None = None
    _functions: dict[tuple[str, str], onnx.FunctionProto] = field(default_factory=dict)
    _measured: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # -> (nodes, depth)
    _open: set[tuple[str, str]] = field(default_factory=set)

    def check(self, model: onnx.ModelProto) -> None:
        """422 when the model, once inlined, has more nodes or deeper nesting than allowed."""
        self._functions = {(f.domain, f.name): f for f in model.functions}
        self._measured, self._open = {}, set()
        nodes, depth = self._graph(list(model.graph.node))
        self._within(nodes, depth)

    def _within(self, nodes: int, depth: int) -> None:
        if nodes > self.max_nodes:
            raise bad("config.model", f"expands to more than {self.max_nodes} nodes once its functions are "
                                      "inlined (--max-model-nodes)")
        if depth > self.max_depth:
            raise bad("config.model", f"nests functions and subgraphs more than {self.max_depth} deep "
                                      "(--max-model-depth)")

    def _graph(self, nodes: list[onnx.NodeProto]) -> tuple[int, int]:
        total, deepest = 0, 0
        for node in nodes:
            count, depth = self._node(node)
            total, deepest = total + count, max(deepest, depth)
            self._within(total, deepest)
        return total, deepest

    def _node(self, node: onnx.NodeProto) -> tuple[int, int]:
        count, depth = 1, 0
        key = (node.domain, node.op_type)
        if key in self._functions:
            count, depth = self._function(key)
        for sub in subgraphs(node):
            inner, inner_depth = self._graph(list(sub.node))
            count, depth = count + inner, max(depth, inner_depth + 1)
        return count, depth

    def _function(self, key: tuple[str, str]) -> tuple[int, int]:
        if key in self._measured:
            return self._measured[key]
        if key in self._open:
            raise bad("config.model", f"function {key[1]!r} calls itself; ONNX functions cannot recurse")
        self._open.add(key)
        nodes, depth = self._graph(list(self._functions[key].node))
        self._open.discard(key)
        self._measured[key] = (nodes, depth + 1)
        return nodes, depth + 1


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
