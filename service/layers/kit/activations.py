"""Keras activations by name (layer-api.md §2), as ONNX subgraphs.

Built from elementary ops so that float16, float32 and float64 all run on ONNX Runtime's
CPU provider (it has no float64 Erf, so gelu's erf is a rational approximation there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.kit.onnx_graph import GraphBuilder

__all__ = ["ACTIVATIONS", "apply_activation", "normalize_activation"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_ALIASES = {None: "linear", "silu": "swish"}

Activation = Callable[[GraphBuilder, str, str], str]


def _scalar(b: GraphBuilder, value: float, dtype: str) -> str:
    return b.const(value, dtype, "k")


def _elu(b: GraphBuilder, x: str, dtype: str, alpha: float = 1.0, scale: float = 1.0) -> str:
    zero = _scalar(b, 0.0, dtype)
    neg = b.op("Mul", [_scalar(b, alpha, dtype), b.op("Sub", [b.op("Exp", [b.op("Min", [x, zero])]),
                                                             _scalar(b, 1.0, dtype)])])
    out = b.op("Where", [b.op("Greater", [x, zero]), x, neg])
    return out if scale == 1.0 else b.op("Mul", [out, _scalar(b, scale, dtype)])


def _softplus(b: GraphBuilder, x: str, dtype: str) -> str:
    # log(1 + exp(x)) computed stably: max(x, 0) + log1p(exp(-|x|)).
    zero = _scalar(b, 0.0, dtype)
    tail = b.op("Log", [b.op("Add", [_scalar(b, 1.0, dtype), b.op("Exp", [b.op("Neg", [b.op("Abs", [x])])])])])
    return b.op("Add", [b.op("Max", [x, zero]), tail])


def _erf(b: GraphBuilder, x: str, dtype: str) -> str:
    if dtype != "float64":
        return b.op("Erf", [x])
    # ORT has no float64 Erf; float32 would break the float64 tolerance, so compute it in float64.
    return _erf_float64(b, x)


def _erf_float64(b: GraphBuilder, x: str) -> str:
    d = "float64"
    ax = b.op("Abs", [x])
    # Maclaurin series below 2.5 (70 terms: error ~1e-14 after cancellation), continued
    # fraction for erfc above it (converges fast there).
    x2 = b.op("Mul", [ax, ax])
    term, total = ax, ax
    for n in range(1, 70):
        term = b.op("Mul", [term, b.op("Mul", [x2, _scalar(b, -1.0 / n, d)])])
        total = b.op("Add", [total, b.op("Mul", [term, _scalar(b, 1.0 / (2 * n + 1), d)])])
    small = b.op("Mul", [total, _scalar(b, 2.0 / math.sqrt(math.pi), d)])
    frac = _scalar(b, 0.0, d)
    for k in range(60, 0, -1):
        frac = b.op("Div", [_scalar(b, k / 2.0, d), b.op("Add", [ax, frac])])
    erfc = b.op("Div", [b.op("Exp", [b.op("Neg", [x2])]),
                        b.op("Mul", [b.op("Add", [ax, frac]), _scalar(b, math.sqrt(math.pi), d)])])
    large = b.op("Sub", [_scalar(b, 1.0, d), erfc])
    mag = b.op("Where", [b.op("Less", [ax, _scalar(b, 2.5, d)]), small, large])
    return b.op("Mul", [mag, b.op("Sign", [x])])


def _gelu(b: GraphBuilder, x: str, dtype: str) -> str:
    inner = _erf(b, b.op("Mul", [x, _scalar(b, 1.0 / math.sqrt(2.0), dtype)]), dtype)
    half_x = b.op("Mul", [x, _scalar(b, 0.5, dtype)])
    return b.op("Mul", [half_x, b.op("Add", [_scalar(b, 1.0, dtype), inner])])


def _clip(b: GraphBuilder, x: str, dtype: str, low: float, high: float) -> str:
    return b.op("Min", [b.op("Max", [x, _scalar(b, low, dtype)]), _scalar(b, high, dtype)])


ACTIVATIONS: dict[str, Activation] = {
    "linear": lambda b, x, d: x,
    "relu": lambda b, x, d: b.op("Relu", [x]),
    "relu6": lambda b, x, d: _clip(b, x, d, 0.0, 6.0),
    "tanh": lambda b, x, d: b.op("Tanh", [x]),
    "sigmoid": lambda b, x, d: b.op("Sigmoid", [x]),
    "hard_sigmoid": lambda b, x, d: _clip(
        b, b.op("Add", [b.op("Mul", [x, _scalar(b, 0.2, d)]), _scalar(b, 0.5, d)]), d, 0.0, 1.0),
    "softmax": lambda b, x, d: b.op("Softmax", [x], axis=-1),
    "log_softmax": lambda b, x, d: b.op("LogSoftmax", [x], axis=-1),
    "elu": lambda b, x, d: _elu(b, x, d),
    "selu": lambda b, x, d: _elu(b, x, d, _SELU_ALPHA, _SELU_SCALE),
    "softplus": _softplus,
    "softsign": lambda b, x, d: b.op("Div", [x, b.op("Add", [_scalar(b, 1.0, d), b.op("Abs", [x])])]),
    "swish": lambda b, x, d: b.op("Mul", [x, b.op("Sigmoid", [x])]),
    "gelu": _gelu,
    "exponential": lambda b, x, d: b.op("Exp", [x]),
    "mish": lambda b, x, d: b.op("Mul", [x, b.op("Tanh", [_softplus(b, x, d)])]),
    # Elementwise rather than ONNX LeakyRelu, whose float32 alpha attribute is off in float64.
    "leaky_relu": lambda b, x, d: b.op("Where", [b.op("Greater", [x, _scalar(b, 0.0, d)]), x,
                                                 b.op("Mul", [x, _scalar(b, 0.2, d)])]),
}


def normalize_activation(value: object) -> str:
    """The activation's canonical name, or TF's ValueError for an unknown one."""
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(
            f"activation must be a name such as 'relu', got {type(value).__name__}",
            code="invalid_activation")
    name = _ALIASES.get(value, value)
    if name not in ACTIVATIONS:
        raise InvalidArgument(f"Unknown activation function '{value}' cannot be deserialized.",
                              code="invalid_activation")
    return str(name)


def apply_activation(b: GraphBuilder, x: str, name: str, dtype: str) -> str:
    return ACTIVATIONS[name](b, x, dtype)
