"""Reverse-mode differentiation of an ONNX graph: finds the nodes between ``xs`` and ``ys``,
walks them in reverse order and appends each one's gradient rule to the graph."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from layerserve.server.core.gradients.emitter import Emitter
from layerserve.server.core.gradients.errors import GradientError, UnsupportedGradient
from layerserve.server.core.gradients.info import GraphInfo
from layerserve.server.core.gradients.registry import NON_DIFFERENTIABLE, RULES, NodeGrad, Rule

__all__ = ["append_gradients", "check_paths"]


def append_gradients(graph: onnx.GraphProto, *, ys: list[str], xs: list[str], grad_ys: list[str | None],
                     stop: set[str]) -> list[str | None]:
    """Append to ``graph`` the nodes computing d(sum_i sum(ys_i * grad_ys_i)) / d xs_j and return
    each x's gradient tensor, or None where x does not reach any y (unconnected, only through
    integer or non-differentiable ops, or only through tensors in ``stop``). ``grad_ys`` None
    means ones. Raises UnsupportedGradient naming an op on the path that has no rule."""
    if len(grad_ys) != len(ys):
        raise GradientError(f"grad_ys has {len(grad_ys)} entries for {len(ys)} ys")
    info = GraphInfo(graph)
    em = Emitter(graph, info)
    nodes = list(graph.node)
    active = _active_tensors(nodes, info, xs, ys, stop)
    _check_rules(nodes, active)
    pending: dict[str, list[str]] = {}
    for y, gy in zip(ys, grad_ys, strict=True):
        if y in active:
            pending.setdefault(y, []).append(gy if gy is not None else em.filled(info.shape(y), 1.0,
                                                                                  info.elem_type(y)))
    for node in reversed(nodes):
        if not any(o in pending for o in node.output):
            continue
        wants = [i in active and not _stopped(node, stop) for i in node.input]
        if not any(wants):
            continue
        out_grads = [_collect(em, pending, o) if o in pending else None for o in node.output]
        _backprop_node(NodeGrad(node, em, info, out_grads, wants), pending)
    return [_collect(em, pending, x) if x in pending else None for x in xs]


def check_paths(graph: onnx.GraphProto, *, ys: list[str], xs: list[str], stop: set[str],
                skip_domain: str | None = None, info: GraphInfo | None = None) -> None:
    """Raise UnsupportedGradient if an op between ``xs`` and ``ys`` has no rule. Needs element
    types only (shapes may be symbolic): a program is checked when it is registered."""
    info = info or GraphInfo(graph)
    nodes = list(graph.node)
    _check_rules(nodes, _active_tensors(nodes, info, xs, ys, stop), skip_domain=skip_domain)


def _maybe_float(info: GraphInfo, name: str) -> bool:
    """Float, or of a type shape inference could not tell (an op it does not know, which then
    needs a rule if a gradient flows through it)."""
    return info.is_float(name) or info.elem_type(name) == 0


def _stopped(node: onnx.NodeProto, stop: set[str]) -> bool:
    return any(o in stop for o in node.output)


def _collect(em: Emitter, pending: dict[str, list[str]], name: str) -> str:
    """The summed gradient of ``name`` (later calls get the same tensor)."""
    terms = pending[name]
    if len(terms) > 1:
        pending[name] = terms = [em.add_all(terms)]
    return terms[0]


def _check_rules(nodes: Sequence[onnx.NodeProto], active: set[str], *, skip_domain: str | None = None) -> None:
    """Every op a gradient flows through has a rule (checked before anything is appended);
    nodes of ``skip_domain`` are not checked (expanded into standard ops later)."""
    for node in nodes:
        if node.domain == skip_domain and skip_domain is not None:
            continue
        if any(o in active for o in node.output) and any(i in active for i in node.input) and _rule(node) is None:
            raise UnsupportedGradient(node.op_type, node.name, node.domain)


def _rule(node: onnx.NodeProto) -> Rule | None:
    return RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None


def _backprop_node(n: NodeGrad, pending: dict[str, list[str]]) -> None:
    node = n.node
    rule = _rule(node)
    if rule is None:
        raise UnsupportedGradient(node.op_type, node.name, node.domain)
    grads = rule(n)
    for name, grad, want in zip(node.input, grads, n.wants, strict=False):
        if want and grad is not None:
            pending.setdefault(name, []).append(grad)


def _active_tensors(nodes: Sequence[onnx.NodeProto], info: GraphInfo, xs: list[str], ys: list[str],
                    stop: set[str]) -> set[str]:
    """Float tensors that depend on some x (not through ``stop``) and that some y depends on."""
    forward = {x for x in xs if info.is_float(x)}
    for node in nodes:
        if node.op_type in NON_DIFFERENTIABLE or not any(i in forward for i in node.input):
            continue
        forward.update(o for o in node.output if o and _maybe_float(info, o) and (o not in stop or o in xs))
    backward = set(ys)
    for node in reversed(nodes):
        if any(o in backward for o in node.output):
            backward.update(i for i in node.input if i)
    return forward & backward
