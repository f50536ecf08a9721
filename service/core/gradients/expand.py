"""Expands ``Gradients`` nodes of a composed program into backward graphs in place.

A program records ``tf.gradients(ys, xs, grad_ys)`` as one node of the ``ai.layerserve``
domain: inputs ``ys + xs + grad_ys`` (an empty name for a None grad_y), attribute ``num_ys``,
one output per x (an empty name where the client already knows the gradient is None). Each
node is replaced, where it stands, by the backward nodes of everything computed before it,
so the graph stays topologically sorted and later nodes (an optimizer's update) read the
gradients. A gradient the client expects but that is structurally zero on the server
(reached only through integer ops, say) becomes zeros of the x's shape.
"""

from __future__ import annotations

import onnx
from onnx import helper

from layerserve.server.core.gradients.backprop import append_gradients, check_paths
from layerserve.server.core.gradients.errors import GradientError
from layerserve.server.core.gradients.info import GraphInfo

__all__ = ["GRADIENTS_DOMAIN", "check_gradient_nodes", "expand_gradient_nodes"]

GRADIENTS_DOMAIN = "ai.layerserve"


def expand_gradient_nodes(graph: onnx.GraphProto, *, stop: set[str], domain: str = GRADIENTS_DOMAIN) -> int:
    """Replace every ``Gradients`` node of ``domain`` in ``graph``; returns how many there were."""
    count = 0
    while True:
        index = next((k for k, n in enumerate(graph.node) if n.op_type == "Gradients" and n.domain == domain), None)
        if index is None:
            return count
        _expand_one(graph, index, stop)
        count += 1


def check_gradient_nodes(graph: onnx.GraphProto, *, domain: str = GRADIENTS_DOMAIN,
                         stop_op: str = "StopGradient") -> None:
    """At registration: every op between each Gradients node's xs and ys has a rule (other nodes
    of ``domain``, expanded later, are not checked here). Raises UnsupportedGradient naming the op."""
    if not any(n.op_type == "Gradients" and n.domain == domain for n in graph.node):
        return
    info = GraphInfo(graph)
    stop = {o for n in graph.node if n.domain == domain and n.op_type == stop_op for o in n.output}
    for index, node in enumerate(graph.node):
        if node.op_type == "Gradients" and node.domain == domain:
            ys, xs, _ = _split(node)
            before = onnx.GraphProto()
            before.node.extend(graph.node[:index])
            check_paths(before, ys=ys, xs=xs, stop=stop, skip_domain=domain, info=info)


def _split(node: onnx.NodeProto) -> tuple[list[str], list[str], list[str | None]]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    num_ys = int(attrs.get("num_ys", 1))
    names = list(node.input)
    num_xs = len(names) - 2 * num_ys
    if num_ys < 1 or num_xs < 0 or len(node.output) != num_xs:
        raise GradientError(f"a Gradients node needs num_ys ys, as many grad_ys and one output per x; got "
                            f"{len(names)} inputs, num_ys={num_ys} and {len(node.output)} outputs")
    ys, xs, grad_ys = names[:num_ys], names[num_ys:num_ys + num_xs], names[num_ys + num_xs:]
    return ys, xs, [g or None for g in grad_ys]


def _expand_one(graph: onnx.GraphProto, index: int, stop: set[str]) -> None:
    """In place: the nodes after the Gradients node are set aside (copies; nodes are small),
    the backward nodes appended, then the wiring and the set-aside nodes (weights are not copied)."""
    node = _copy(graph.node[index])
    ys, xs, grad_ys = _split(node)
    tail = [_copy(n) for n in graph.node[index + 1:]]
    outputs = [_copy_value(v) for v in graph.output]
    del graph.node[index:]
    del graph.output[:]
    grads = append_gradients(graph, ys=ys, xs=xs, grad_ys=grad_ys, stop=stop)
    info: GraphInfo | None = None
    for grad, x, out in zip(grads, xs, node.output, strict=True):
        if not out:
            continue
        if grad is None:
            info = info or GraphInfo(graph)
            zeros = helper.make_tensor("value", info.elem_type(x), [1], [0.0])
            shape = helper.make_tensor(f"{out}/shape", onnx.TensorProto.INT64, [len(info.shape(x))],
                                       list(info.shape(x)))
            graph.node.append(helper.make_node("Constant", [], [f"{out}/shape"], value=shape))
            graph.node.append(helper.make_node("ConstantOfShape", [f"{out}/shape"], [out], value=zeros))
        else:
            graph.node.append(helper.make_node("Identity", [grad], [out]))
    graph.node.extend(tail)
    graph.output.extend(outputs)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


def _copy_value(value: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    copied = onnx.ValueInfoProto()
    copied.CopyFrom(value)
    return copied
