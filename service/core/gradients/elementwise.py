"""Gradients of elementwise ops (numpy broadcasting: each input's gradient is summed back to
its shape) and of the activations the layers and recorded graphs use."""

from __future__ import annotations

import math

from layerserve.server.core.gradients.registry import Grads, NodeGrad, rule

__all__: list[str] = []


def _both(n: NodeGrad, ga: str | None, gb: str | None) -> Grads:
    return [n.unbroadcast(ga, 0) if ga is not None and n.want(0) else None,
            n.unbroadcast(gb, 1) if gb is not None and n.want(1) else None]


@rule("Add")
def _add(n: NodeGrad) -> Grads:
    return _both(n, n.g, n.g)


@rule("Sub")
def _sub(n: NodeGrad) -> Grads:
    return _both(n, n.g, n.em.op("Neg", [n.g]) if n.want(1) else None)


@rule("Mul")
def _mul(n: NodeGrad) -> Grads:
    em, a, b = n.em, n.inp(0), n.inp(1)
    return _both(n, em.op("Mul", [n.g, b]) if n.want(0) else None, em.op("Mul", [n.g, a]) if n.want(1) else None)


@rule("Div")
def _div(n: NodeGrad) -> Grads:
    em, b = n.em, n.inp(1)
    ga = em.op("Div", [n.g, b]) if n.want(0) else None
    gb = em.op("Neg", [em.op("Div", [em.op("Mul", [n.g, n.out()]), b])]) if n.want(1) else None
    return _both(n, ga, gb)


@rule("Mod")
def _mod(n: NodeGrad) -> Grads:
    """``x - y * trunc(x / y)`` (floats need ``fmod=1``): d/dx = 1, d/dy = -trunc(x / y)."""
    em, x, y = n.em, n.inp(0), n.inp(1)
    gy = None
    if n.want(1) and n.info.is_float(y):
        q = em.op("Div", [x, y])
        whole = em.op("Mul", [em.op("Sign", [q]), em.op("Floor", [em.op("Abs", [q])])])
        gy = em.op("Neg", [em.op("Mul", [n.g, whole])])
    return _both(n, n.g if n.want(0) else None, gy)


@rule("Pow")
def _pow(n: NodeGrad) -> Grads:
    em, a, b = n.em, n.inp(0), n.inp(1)
    ga = gb = None
    if n.want(0):  # b * a^(b-1); b may be an integer tensor
        bf = em.cast(b, n.elem(a), n.elem(b))
        power = em.op("Pow", [a, em.op("Sub", [bf, n.scalar(1.0, a)])])
        ga = em.op("Mul", [n.g, em.op("Mul", [bf, power])])
    if n.want(1):  # y * log(a), zero where a <= 0 (TF's choice)
        positive = em.op("Greater", [a, n.scalar(0.0, a)])
        safe = em.op("Where", [positive, a, n.scalar(1.0, a)])
        log = em.op("Where", [positive, em.op("Log", [safe]), n.scalar(0.0, a)])
        gb = em.op("Mul", [n.g, em.op("Mul", [n.out(), log])])
    return _both(n, ga, gb)


def _unary(n: NodeGrad, factor: str) -> Grads:
    return [n.em.op("Mul", [n.g, factor])]


@rule("Identity")
def _identity(n: NodeGrad) -> Grads:
    return [n.g]


@rule("Dropout")
def _dropout(n: NodeGrad) -> Grads:
    """Identity unless training; then the forward run's mask (an output added when missing)."""
    em, training = n.em, n.inp(2)
    if not training or not (n.info.constant(training) is None or bool(n.info.constant(training))):
        return [n.g]
    if len(n.node.output) < 2 or not n.node.output[1]:
        del n.node.output[1:]
        n.node.output.append(em.fresh("dropout_mask"))
    mask = em.op("Cast", [n.node.output[1]], to=n.elem())
    ratio, ratio_type = (n.inp(1), n.elem(n.inp(1))) if n.inp(1) else (n.scalar(0.5), n.elem())
    keep = em.cast(em.op("Sub", [em.scalar(1.0, ratio_type), ratio]), n.elem(), ratio_type)
    return [em.op("Div", [em.op("Mul", [n.g, mask]), keep])]


@rule("Cast", "CastLike")
def _cast(n: NodeGrad) -> Grads:
    return [n.em.cast(n.g, n.elem(n.inp(0)), n.elem())]


@rule("Neg")
def _neg(n: NodeGrad) -> Grads:
    return [n.em.op("Neg", [n.g])]


@rule("Abs")
def _abs(n: NodeGrad) -> Grads:
    return _unary(n, n.em.op("Sign", [n.inp(0)]))


@rule("Sign")
def _sign(n: NodeGrad) -> Grads:
    """TF's Sign gradient is zeros (not None)."""
    return [n.em.zeros(n.shape(n.inp(0)), n.elem(n.inp(0)))]


@rule("Sqrt")
def _sqrt(n: NodeGrad) -> Grads:
    return [n.em.op("Div", [n.em.op("Mul", [n.g, n.scalar(0.5)]), n.out()])]


@rule("Exp")
def _exp(n: NodeGrad) -> Grads:
    return _unary(n, n.out())


@rule("Log")
def _log(n: NodeGrad) -> Grads:
    return [n.em.op("Div", [n.g, n.inp(0)])]


@rule("Reciprocal")
def _reciprocal(n: NodeGrad) -> Grads:
    y = n.out()
    return [n.em.op("Neg", [n.em.op("Mul", [n.g, n.em.op("Mul", [y, y])])])]


@rule("Sin")
def _sin(n: NodeGrad) -> Grads:
    return _unary(n, n.em.op("Cos", [n.inp(0)]))


@rule("Cos")
def _cos(n: NodeGrad) -> Grads:
    return [n.em.op("Neg", [n.em.op("Mul", [n.g, n.em.op("Sin", [n.inp(0)])])])]


def _trig(op: str, n: NodeGrad) -> str:
    """d/dx of the inverse and hyperbolic trigonometric ops, times the output gradient."""
    em, x, y, one = n.em, n.inp(0), n.out(), n.scalar(1.0)
    square = em.op("Mul", [x, x])
    if op == "Tan":
        return em.op("Mul", [n.g, em.op("Add", [one, em.op("Mul", [y, y])])])
    if op == "Atan":
        return em.op("Div", [n.g, em.op("Add", [one, square])])
    if op == "Atanh":
        return em.op("Div", [n.g, em.op("Sub", [one, square])])
    if op in ("Asin", "Acos"):
        slope = em.op("Div", [n.g, em.op("Sqrt", [em.op("Sub", [one, square])])])
        return slope if op == "Asin" else em.op("Neg", [slope])
    if op in ("Asinh", "Acosh"):
        inner = em.op("Add", [square, one]) if op == "Asinh" else em.op("Sub", [square, one])
        return em.op("Div", [n.g, em.op("Sqrt", [inner])])
    return em.op("Mul", [n.g, em.op("Cosh" if op == "Sinh" else "Sinh", [x])])


@rule("Tan", "Atan", "Atanh", "Asin", "Acos", "Asinh", "Acosh", "Sinh", "Cosh")
def _trigonometric(n: NodeGrad) -> Grads:
    return [_trig(n.node.op_type, n)]


def _where_positive(n: NodeGrad, x: str, then: str, other: str) -> str:
    return n.em.op("Where", [n.em.op("Greater", [x, n.scalar(0.0, x)]), then, other])


@rule("Relu")
def _relu(n: NodeGrad) -> Grads:
    # TF's ReluGrad multiplies by the mask (a NaN gradient stays NaN where the unit is off); a
    # Mul is also several times faster than a Where in ONNX Runtime
    em = n.em
    mask = em.op("Cast", [em.op("Greater", [n.out(), n.scalar(0.0, n.out())])], to=n.elem())
    return [em.op("Mul", [n.g, mask])]


@rule("LeakyRelu")
def _leaky_relu(n: NodeGrad) -> Grads:
    alpha = float(n.attr("alpha", 0.01))
    return [_where_positive(n, n.inp(0), n.g, n.em.op("Mul", [n.g, n.scalar(alpha)]))]


@rule("PRelu")
def _prelu(n: NodeGrad) -> Grads:
    em, x, slope = n.em, n.inp(0), n.inp(1)
    positive = em.op("Greater", [x, n.scalar(0.0, x)])
    zero = n.scalar(0.0)
    gx = em.op("Where", [positive, n.g, em.op("Mul", [n.g, slope])]) if n.want(0) else None
    gs = em.op("Where", [positive, zero, em.op("Mul", [n.g, x])]) if n.want(1) else None
    return _both(n, gx, gs)


@rule("Elu")
def _elu(n: NodeGrad) -> Grads:
    alpha = float(n.attr("alpha", 1.0))
    negative = n.em.op("Mul", [n.g, n.em.op("Add", [n.out(), n.scalar(alpha)])])
    return [_where_positive(n, n.inp(0), n.g, negative)]


@rule("Selu")
def _selu(n: NodeGrad) -> Grads:
    alpha = float(n.attr("alpha", 1.67326319217681884765625))
    gamma = float(n.attr("gamma", 1.05070102214813232421875))
    negative = n.em.op("Mul", [n.g, n.em.op("Add", [n.out(), n.scalar(alpha * gamma)])])
    return [_where_positive(n, n.inp(0), n.em.op("Mul", [n.g, n.scalar(gamma)]), negative)]


@rule("Sigmoid")
def _sigmoid(n: NodeGrad) -> Grads:
    y = n.out()
    return _unary(n, n.em.op("Mul", [y, n.em.op("Sub", [n.scalar(1.0), y])]))


@rule("Tanh")
def _tanh(n: NodeGrad) -> Grads:
    y = n.out()
    return _unary(n, n.em.op("Sub", [n.scalar(1.0), n.em.op("Mul", [y, y])]))


@rule("Softplus")
def _softplus(n: NodeGrad) -> Grads:
    return _unary(n, n.em.op("Sigmoid", [n.inp(0)]))


@rule("Softsign")
def _softsign(n: NodeGrad) -> Grads:
    em = n.em
    denom = em.op("Add", [n.scalar(1.0), em.op("Abs", [n.inp(0)])])
    return [em.op("Div", [n.g, em.op("Mul", [denom, denom])])]


@rule("HardSigmoid")
def _hard_sigmoid(n: NodeGrad) -> Grads:
    em, alpha, beta = n.em, float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5))
    inner = em.op("Add", [em.op("Mul", [n.inp(0), n.scalar(alpha)]), n.scalar(beta)])
    inside = em.op("And", [em.op("Greater", [inner, n.scalar(0.0)]), em.op("Less", [inner, n.scalar(1.0)])])
    return [em.op("Where", [inside, em.op("Mul", [n.g, n.scalar(alpha)]), n.scalar(0.0)])]


@rule("Erf")
def _erf(n: NodeGrad) -> Grads:
    em, x = n.em, n.inp(0)
    bell = em.op("Exp", [em.op("Neg", [em.op("Mul", [x, x])])])
    return _unary(n, em.op("Mul", [bell, n.scalar(2.0 / math.sqrt(math.pi))]))


@rule("Where")
def _where(n: NodeGrad) -> Grads:
    em, cond, zero = n.em, n.inp(0), n.scalar(0.0)
    ga = em.op("Where", [cond, n.g, zero]) if n.want(1) else None
    gb = em.op("Where", [cond, zero, n.g]) if n.want(2) else None
    return [None,
            n.unbroadcast(ga, 1) if ga is not None else None,
            n.unbroadcast(gb, 2) if gb is not None else None]


@rule("Max", "Min")
def _max_min(n: NodeGrad) -> Grads:
    """The first input equal to the result takes the gradient (TF's maximum: ``x >= y`` to x)."""
    em, y = n.em, n.out()
    taken: str | None = None
    grads: Grads = []
    zero = n.scalar(0.0)
    for i, x in enumerate(n.node.input):
        hit = em.op("Equal", [x, y])
        mine = hit if taken is None else em.op("And", [hit, em.op("Not", [taken])])
        if n.want(i):
            grads.append(n.unbroadcast(em.op("Where", [mine, n.g, zero]), i))
        else:
            grads.append(None)
        taken = mine if taken is None else em.op("Or", [taken, mine])
    return grads


@rule("Sum")
def _sum(n: NodeGrad) -> Grads:
    return [n.unbroadcast(n.g, i) if n.want(i) else None for i in range(len(n.node.input))]


@rule("Mean")
def _mean(n: NodeGrad) -> Grads:
    share = n.em.op("Mul", [n.g, n.scalar(1.0 / len(n.node.input))])
    return [n.unbroadcast(share, i) if n.want(i) else None for i in range(len(n.node.input))]


@rule("Clip")
def _clip(n: NodeGrad) -> Grads:
    """TF's clip_by_value: the gradient passes where ``low <= x <= high``; the bounds take the rest."""
    em, x, low, high = n.em, n.inp(0), n.inp(1), n.inp(2)
    zero = n.scalar(0.0)
    below = em.op("Less", [x, low]) if low else None
    above = em.op("Greater", [x, high]) if high else None
    outside = below if above is None else (above if below is None else em.op("Or", [below, above]))
    grads: Grads = [None, None, None]
    if n.want(0):
        grads[0] = n.g if outside is None else em.op("Where", [outside, zero, n.g])
    for i, mask in ((1, below), (2, above)):
        if n.want(i) and mask is not None:
            grads[i] = em.unbroadcast(em.op("Where", [mask, n.g, zero]), n.shape(x), n.shape(n.inp(i)), n.elem())
    return grads
