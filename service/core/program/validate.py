"""What a registered program may hold: standard ONNX ops and the ``ai.layerserve`` nodes."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from layerserve.server.errors import InvalidArgument, NotFound
from layerserve.server.layers.custom.budget import ModelBudget

__all__ = ["CUSTOM_OPS", "DOMAIN", "check_gradient_paths", "check_program"]

DOMAIN = "ai.layerserve"
CUSTOM_OPS = {"ReadVariable", "Assign", "InitVariable", "LayerCall", "LayerUpdate", "StopGradient", "Gradients"}


def check_program(model: onnx.ModelProto, *, budget: ModelBudget, has_layer: Callable[[str], bool],
                  has_variable: Callable[[str], bool], gradients: bool) -> None:
    """4xx naming what the server cannot run, before anything is stored: first its size against
    ``budget`` (see ``cost.program_budget``), before anything else walks it. Its gradients are
    checked apart (``check_gradient_paths``), once its shape inference is known to be cheap."""
    budget.check(model)
    for node in model.graph.node:
        if node.domain == DOMAIN:
            _check_custom(node, has_layer, has_variable, gradients=gradients)
        elif node.domain in ("", "ai.onnx"):
            if not onnx.defs.has(node.op_type):
                raise InvalidArgument(f"the program uses the op {node.op_type!r}, which the server cannot run",
                                      code="unsupported_op", op=node.op_type)
        else:
            raise InvalidArgument(f"the program uses the op {node.domain}.{node.op_type}, which the server cannot run",
                                  code="unsupported_op", op=node.op_type)


def check_gradient_paths(model: onnx.ModelProto) -> None:
    """An op without a gradient rule between a Gradients node's xs and ys: refused at registration
    (this infers the program's shapes, holding the GIL)."""
    from layerserve.server.core.gradients import check_gradient_nodes

    check_gradient_nodes(model.graph, domain=DOMAIN)


def _attr(node: onnx.NodeProto, name: str) -> str:
    for a in node.attribute:
        if a.name == name:
            return a.s.decode() if a.type == onnx.AttributeProto.STRING else str(a.i)
    raise InvalidArgument(f"the program's {node.op_type} node lacks its {name!r} attribute", code="invalid_program")


def _check_custom(node: onnx.NodeProto, has_layer: Callable[[str], bool], has_variable: Callable[[str], bool], *,
                  gradients: bool) -> None:
    if node.op_type not in CUSTOM_OPS:
        raise InvalidArgument(f"the program uses the op {DOMAIN}.{node.op_type}, which the server cannot run",
                              code="unsupported_op", op=node.op_type)
    if node.op_type == "Gradients" and not gradients:
        raise InvalidArgument("gradients not available: this server cannot form gradients yet",
                              code="gradients_unavailable", op="Gradients")
    if node.op_type == "LayerCall" and not has_layer(_attr(node, "layer")):
        raise NotFound(f"the program calls layer {_attr(node, 'layer')!r}, which the graph does not hold",
                       code="layer_not_found")
    if node.op_type in ("ReadVariable", "Assign", "InitVariable", "LayerUpdate") and not has_variable(_attr(node, "variable")):
        raise NotFound(f"the program uses variable {_attr(node, 'variable')!r}, which the graph does not hold",
                       code="variable_not_found")
