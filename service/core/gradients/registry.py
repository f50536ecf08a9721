"""The gradient rules by ONNX op type, and what a rule sees of its node."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from layerserve.server.core.gradients.emitter import Emitter
from layerserve.server.core.gradients.info import GraphInfo

__all__ = ["NON_DIFFERENTIABLE", "RULES", "Grads", "NodeGrad", "Rule", "rule"]

Grads = list[str | None]


@dataclass
class NodeGrad:
    """One forward node during the backward pass: its incoming gradients (one per output,
    None where nothing flows back) and which inputs need a gradient."""

    node: onnx.NodeProto
    em: Emitter
    info: GraphInfo
    out_grads: Grads
    wants: list[bool]

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def inp(self, i: int) -> str:
        return str(self.node.input[i]) if i < len(self.node.input) else ""

    def out(self, i: int = 0) -> str:
        return str(self.node.output[i])

    def shape(self, name: str) -> tuple[int, ...]:
        return self.info.shape(name)

    def elem(self, name: str | None = None) -> int:
        return self.info.elem_type(name or self.out())

    def want(self, i: int) -> bool:
        return i < len(self.wants) and self.wants[i]

    @property
    def g(self) -> str:
        """The first output's gradient (zeros where only other outputs carry one)."""
        return self.grad_of(0)

    def grad_of(self, i: int) -> str:
        grad = self.out_grads[i] if i < len(self.out_grads) else None
        if grad is None:
            out = self.out(i)
            return self.em.zeros(self.shape(out), self.elem(out))
        return grad

    def scalar(self, value: float, like: str | None = None) -> str:
        return self.em.scalar(value, self.elem(like))

    def unbroadcast(self, g: str, i: int) -> str:
        """``g`` (of the output's shape) summed down to input ``i``'s shape."""
        return self.em.unbroadcast(g, self.shape(self.out()), self.shape(self.inp(i)), self.elem())

    def const_ints(self, i: int, what: str) -> list[int]:
        return [int(v) for v in self.info.require_constant(self.inp(i), what, self.node).reshape(-1)]


Rule = Callable[[NodeGrad], Grads]
RULES: dict[str, Rule] = {}

# Ops through which no gradient flows (TF registers them as not differentiable or their outputs
# are integers or booleans): reaching an input only through them gives no gradient.
NON_DIFFERENTIABLE = frozenset({
    "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And",
    "Or", "Xor", "IsNaN", "IsInf", "NonZero", "OneHot", "ConstantOfShape", "Constant", "Range", "Floor", "Ceil",
    "Round", "EyeLike", "Hardmax", "RandomNormal", "RandomUniform", "RandomUniformLike", "RandomNormalLike", "Multinomial", "Bernoulli", "BitShift",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "StringNormalizer",
})


def rule(*op_types: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op_type in op_types:
            RULES[op_type] = fn
        return fn
    return register
