"""Constructor arguments, declared once per class and validated the way TensorFlow does.

Each layer class lists its keyword arguments as ``Param``s; the parsers here turn JSON
values into normalized, JSON-serializable config values or raise TF's error for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.kit.activations import normalize_activation
from layerserve.server.layers.kit.initializers import parse_initializer
from layerserve.server.layers.kit.regularizers import parse_regularizer

__all__ = [
    "REQUIRED", "ZEROS", "Param", "kernel_bias_params", "activation", "boolean", "constraint", "data_format", "initializer",
    "int_tuple", "nonneg_float", "padding", "positive_int", "regularizer", "units_int",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = REQUIRED
    parse: Parser = lambda value, name: value


def _bad(message: str, exception: str = "ValueError") -> InvalidArgument:
    return InvalidArgument(message, code="invalid_argument", exception=exception)


def _as_int(value: Any, name: str) -> int:
    """TF casts with ``int()``: ints, bools, floats and numeric strings pass; its error otherwise."""
    try:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot convert float {value} to integer")
        return int(value)
    except (TypeError, ValueError) as error:
        raise _bad(str(error), type(error).__name__) from None


def units_int(value: Any, name: str) -> int:
    number = _as_int(value, name)
    if number < 0:
        raise _bad(f"Received an invalid value for `{name}`, expected a positive integer. Received: {name}={value}")
    return number


def positive_int(value: Any, name: str) -> int:
    number = _as_int(value, name)
    if number <= 0:
        raise _bad(f"Invalid value for argument `{name}`. Expected a strictly positive value. Received {name}={value}.")
    return number


def _shown(value: Any) -> str:
    """A value as TF's messages print it; JSON lists stand for the tuples TF code passes."""
    return str(tuple(value)) if isinstance(value, list) else str(value)


def int_tuple(rank: int, *, allow_zero: bool = False) -> Parser:
    """Keras' ``normalize_tuple``: an int, or ``rank`` ints (kernel_size, strides, dilation_rate,
    pool_size), with its messages."""
    def parse(value: Any, name: str) -> list[int]:
        message = f"The `{name}` argument must be a tuple of {rank} integers. Received: {_shown(value)}"
        if isinstance(value, int):
            items = [value] * rank
        elif isinstance(value, (list, tuple)) and len(value) == rank:
            items = list(value)
        else:
            raise _bad(message)
        for item in items:
            try:
                int(item)
            except (TypeError, ValueError):
                raise _bad(f"{message}including element {item} of type {type(item)}") from None
        numbers = [int(item) for item in items]
        unqualified = {n for n in numbers if n < 0 or (n == 0 and not allow_zero)}
        if unqualified:
            raise _bad(f"{message} including {unqualified} that does not satisfy the requirement "
                       f"`{'>= 0' if allow_zero else '> 0'}`.")
        return numbers
    return parse


def padding(allowed: tuple[str, ...]) -> Parser:
    """Keras' ``normalize_padding`` (one message for every class); ``allowed`` is what the class
    takes (explicit padding lists are not supported)."""
    def parse(value: Any, name: str) -> str:
        text = value.lower() if isinstance(value, str) else value
        if text not in allowed:
            raise _bad('The `padding` argument must be a list/tuple or one of "valid", "same" (or "causal", only '
                       f"for `Conv1D). Received: {text}")
        return str(text)
    return parse


def data_format(value: Any, name: str) -> str:
    text = value.lower() if isinstance(value, str) else value
    if text is None:
        return "channels_last"
    if text not in ("channels_last", "channels_first"):
        raise _bad('The `data_format` argument must be one of "channels_first", "channels_last". '
                   f"Received: {value}")
    return str(text)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"`{name}` must be true or false, got {value!r}", "TypeError")
    return value


def nonneg_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(f"`{name}` must be a finite number, got {value!r}", "TypeError")
    return float(value)


def activation(value: Any, name: str) -> str:
    return normalize_activation(value)


def regularizer(value: Any, name: str) -> dict[str, Any] | None:
    """Stored as ``{"class_name", "config"}``, which ``parse_regularizer`` reads back."""
    reg = parse_regularizer(value, name)
    return None if reg is None else {"class_name": reg.class_name, "config": reg.to_json()}


def initializer(value: Any, name: str) -> dict[str, Any] | None:
    init = parse_initializer(value, name)
    return None if init is None else {"class_name": init.class_name, "config": init.config}


def constraint(value: Any, name: str) -> None:
    if value is not None:
        raise InvalidArgument(f"`{name}` is not supported by layerserve (constraints are applied by "
                              "optimizers, which run in the client's process)", code="unsupported_argument")
    return None


ZEROS = {"class_name": "Zeros", "config": {}}  # TF's v1 default bias initializer


def kernel_bias_params(kernel_initializer: Any = None) -> tuple[Param, ...]:
    """The arguments Dense and the convolutions share, in TF's signature order."""
    return (
        Param("activation", "linear", activation),
        Param("use_bias", default=True, parse=boolean),
        Param("kernel_initializer", kernel_initializer, initializer),
        Param("bias_initializer", ZEROS, initializer),
        Param("kernel_regularizer", None, regularizer),
        Param("bias_regularizer", None, regularizer),
        Param("activity_regularizer", None, regularizer),
        Param("kernel_constraint", None, constraint),
        Param("bias_constraint", None, constraint),
    )
