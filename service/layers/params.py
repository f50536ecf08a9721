"""Constructor arguments, declared once per class and validated the way TensorFlow does.

Each layer class lists its keyword arguments as ``Param``s; the parsers here turn JSON
values into normalized, JSON-serializable config values or raise TF's error for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.core.activations import normalize_activation
from service.core.initializers import parse_initializer
from service.core.regularizers import parse_regularizer
from service.errors import InvalidArgument

__all__ = [
    "REQUIRED", "Param", "activation", "boolean", "constraint", "data_format", "initializer",
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
    """TF casts with ``int()``: ints, integral floats and numeric strings pass."""
    if isinstance(value, bool):
        raise _bad(f"`{name}` must be an integer, got {value!r}", "TypeError")
    try:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid literal for int() with base 10: {value!r} (argument `{name}`)") from None


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


def int_tuple(rank: int, allow_zero: bool = False) -> Parser:
    """An int, or a list of ``rank`` ints (kernel_size, strides, dilation_rate, pool_size)."""
    def parse(value: Any, name: str) -> list[int]:
        items = [value] * rank if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or len(items) != rank:
            raise _bad(f"The `{name}` argument must be a tuple of {rank} integers. Received: {value}")
        numbers = [_as_int(item, name) for item in items]
        if any(n < 0 or (n == 0 and not allow_zero) for n in numbers):
            raise _bad(f"The `{name}` argument must be a tuple of {rank} integers. Received {name}={value} "
                       f"including values {{{', '.join(str(n) for n in numbers if n <= 0)}}} that do not satisfy "
                       f"`value > 0`")
        return numbers
    return parse


def padding(allowed: tuple[str, ...]) -> Parser:
    def parse(value: Any, name: str) -> str:
        text = value.lower() if isinstance(value, str) else value
        if text not in allowed:
            raise _bad(f"The `padding` argument must be a list/tuple or one of {', '.join(repr(a) for a in allowed)}. "
                       f"Received: {value}")
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
