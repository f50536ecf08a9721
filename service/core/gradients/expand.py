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

import copy

import onnx
from onnx import helper

from layerserve.server.core.gradients.backprop import append_gradients
from layerserve.server.core.gradients.errors import GradientError
from layerserve.server.core.gradients.info import GraphInfo

__all__ = ["GRADIENTS_DOMAIN", "expand_gradient_nodes"]

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
    node = graph.node[index]
    ys, xs, grad_ys = _split(node)
    before = copy.deepcopy(graph)
    del before.node[index:]
    del before.output[:]
    grads = append_gradients(before, ys=ys, xs=xs, grad_ys=grad_ys, stop=stop)
    info: GraphInfo | None = None
    wiring = []
    for grad, x, out in zip(grads, xs, node.output, strict=True):
        if not out:
            continue
        if grad is None:
            info = info or GraphInfo(before)
            zeros = helper.make_tensor("value", info.elem_type(x), [1], [0.0])
            shape = helper.make_tensor(f"{out}/shape", onnx.TensorProto.INT64, [len(info.shape(x))],
                                       list(info.shape(x)))
            wiring.append(helper.make_node("Constant", [], [f"{out}/shape"], value=shape))
            wiring.append(helper.make_node("ConstantOfShape", [f"{out}/shape"], [out], value=zeros))
        else:
            wiring.append(helper.make_node("Identity", [grad], [out]))
    after = list(graph.node[index + 1:])
    del graph.node[:]
    graph.node.extend([*before.node, *wiring, *after])
    del graph.initializer[:]
    graph.initializer.extend(before.initializer)
