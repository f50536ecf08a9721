"""Gradients of MatMul, Gemm and Einsum."""

from __future__ import annotations

from layerserve.server.core.gradients.errors import UnsupportedGradient
from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


def _swap_last(n: NodeGrad, x: str, rank: int) -> str:
    return n.em.op("Transpose", [x], perm=[*range(rank - 2), rank - 1, rank - 2])


@rule("MatMul")
def _matmul(n: NodeGrad) -> Grads:
    """numpy's matmul: 1-D operands become matrices, batch dims broadcast."""
    em, a, b = n.em, n.inp(0), n.inp(1)
    sa, sb = n.shape(a), n.shape(b)
    if len(sa) == 2 and len(sb) == 2:  # matrices: Gemm transposes in place
        return [em.op("Gemm", [n.g, b], transB=1) if n.want(0) else None,
                em.op("Gemm", [a, n.g], transA=1) if n.want(1) else None]
    ma = [1, *sa] if len(sa) == 1 else list(sa)
    mb = [*sb, 1] if len(sb) == 1 else list(sb)
    batch = _broadcast(ma[:-2], mb[:-2])
    gshape = [*batch, ma[-2], mb[-1]]
    g = em.reshape(n.g, gshape)
    a2 = em.reshape(a, ma) if len(sa) == 1 else a
    b2 = em.reshape(b, mb) if len(sb) == 1 else b
    grads: Grads = [None, None]
    if n.want(0):
        ga = em.op("MatMul", [g, _swap_last(n, b2, len(mb))])
        grads[0] = em.reshape(em.unbroadcast(ga, [*batch, ma[-2], ma[-1]], ma, n.elem()), sa)
    if n.want(1):
        gb = em.op("MatMul", [_swap_last(n, a2, len(ma)), g])
        grads[1] = em.reshape(em.unbroadcast(gb, [*batch, mb[-2], mb[-1]], mb, n.elem()), sb)
    return grads


def _broadcast(x: list[int], y: list[int]) -> list[int]:
    width = max(len(x), len(y))
    x, y = [1] * (width - len(x)) + x, [1] * (width - len(y)) + y
    return [max(p, q) if 1 in (p, q) else p for p, q in zip(x, y, strict=True)]


@rule("Gemm")
def _gemm(n: NodeGrad) -> Grads:
    """``alpha * A' @ B' + beta * C`` with A' = A or A^T, B' = B or B^T."""
    em, a, b = n.em, n.inp(0), n.inp(1)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    trans_a, trans_b = int(n.attr("transA", 0)), int(n.attr("transB", 0))
    g = n.g if alpha == 1.0 else em.op("Mul", [n.g, n.scalar(alpha)])
    grads: Grads = [None, None, None]
    if n.want(0):  # dA' = g B'^T; dA = dA'^T when transposed
        grads[0] = (em.op("Gemm", [b, g], transA=trans_b, transB=1) if trans_a
                    else em.op("Gemm", [g, b], transB=1 - trans_b))
    if n.want(1):  # dB' = A'^T g
        grads[1] = (em.op("Gemm", [g, a], transA=1, transB=trans_a) if trans_b
                    else em.op("Gemm", [a, g], transA=1 - trans_a))
    if n.want(2):
        gc = n.g if beta == 1.0 else em.op("Mul", [n.g, n.scalar(beta)])
        grads[2] = n.unbroadcast(gc, 2)
    return grads


def _terms(n: NodeGrad) -> tuple[list[str], str]:
    equation = str(n.attr("equation")).replace(" ", "")
    if "." in equation:
        raise UnsupportedGradient("Einsum(with ellipsis)", n.node.name)
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if "->" not in equation:  # implicit output: the letters used once, sorted
        letters = "".join(terms)
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return terms, rhs


@rule("Einsum")
def _einsum(n: NodeGrad) -> Grads:
    """The gradient of operand i is the einsum of the output gradient with the other operands,
    broadcast over the letters only operand i had."""
    terms, rhs = _terms(n)
    grads: Grads = []
    for i, term in enumerate(terms):
        if not n.want(i):
            grads.append(None)
            continue
        if len(set(term)) != len(term):
            raise UnsupportedGradient("Einsum(with a repeated index)", n.node.name)
        others = [t for j, t in enumerate(terms) if j != i]
        present = set(rhs).union(*others) if others else set(rhs)
        kept = "".join(c for c in term if c in present)
        operands = [n.g, *[x for j, x in enumerate(n.node.input) if j != i]]
        partial = n.em.op("Einsum", operands, equation=f"{','.join([rhs, *others])}->{kept}")
        shape = n.shape(n.inp(i))
        if kept != term:
            partial = n.em.reshape(partial, [d if c in present else 1 for c, d in zip(term, shape, strict=True)])
            partial = n.em.op("Expand", [partial, n.em.ints(shape)])
        grads.append(partial)
    return grads
