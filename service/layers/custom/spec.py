"""The JSON description of a custom layer, parsed and normalised (no ONNX here).

A create body's ``config`` for ``class: "Layer"``::

    {"model": "<base64 ONNX bytes>",
     "variables": [{"name": "kernel", "shape": ["input:-1", 4], "dtype": "float32",
                    "initializer": "glorot_uniform" | {"class_name", "config"} | null,
                    "value": {"dtype", "shape", "data"} | null, "regularizer": null, "trainable": true}],
     "losses": [{"output": "act_loss", "conditional": true}],
     "updates": [{"output": "new_mean", "variable": "moving_mean", "momentum": 0.99 | null}],
     "input_spec": {...} | [{...}, ...] | null, "training_input": "training" | null,
     "class_name": "MyLayer" | null, "batch_separable": false, "activity_regularizer": null}

The normalised form is what the store keeps, so it stays plain JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from layerserve.protocol import FrameError, tensor_from_json
from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.kit.dtypes import FLOAT_DTYPES
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.params import initializer, regularizer

__all__ = [
    "CONFIG_KEYS", "LossDecl", "UpdateDecl", "VariableDecl", "bad", "input_ref_of", "normalize_config",
    "parse_input_spec", "parse_losses", "parse_updates", "parse_variables",
]

CONFIG_KEYS = ("model", "variables", "losses", "updates", "input_spec", "training_input", "class_name",
               "batch_separable", "activity_regularizer")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_INPUT_DIM = re.compile(r"input(\d*):(-?\d+)")
_SPEC_KEYS = {"ndim", "min_ndim", "max_ndim", "axes", "dtype", "shape"}


def bad(where: str, message: str, exception: str = "ValueError") -> InvalidArgument:
    """A 422 naming the config field at fault."""
    return InvalidArgument(f"custom layer {where}: {message}", code="invalid_custom_layer",
                           exception=exception, field=where)


@dataclass(frozen=True)
class VariableDecl:
    name: str
    shape: tuple[int | str, ...]  # ints, or "input:<axis>" / "input<k>:<axis>" taken from an input at build
    dtype: str
    trainable: bool
    initializer: dict[str, Any] | None
    value: dict[str, Any] | None  # explicit initial value as a JSON tensor
    regularizer: dict[str, Any] | None


@dataclass(frozen=True)
class LossDecl:
    output: str
    conditional: bool


@dataclass(frozen=True)
class UpdateDecl:
    output: str
    variable: str
    momentum: float | None  # None: assign the output; else TF's moving average toward it


def input_ref_of(entry: int | str) -> tuple[int, int] | None:
    """(input index, axis) for a shape entry such as "input1:-1"; None for an int."""
    if isinstance(entry, int):
        return None
    match = _INPUT_DIM.fullmatch(entry)
    assert match is not None
    return int(match.group(1) or 0), int(match.group(2))


def _shape(value: object, where: str) -> tuple[int | str, ...]:
    if not isinstance(value, list) or len(value) > 32:
        raise bad(where, f"shape must be a list of ints or 'input:<axis>' entries, got {value!r}")
    for entry in value:
        ok_int = isinstance(entry, int) and not isinstance(entry, bool) and 0 <= entry < 2**31
        if not ok_int and not (isinstance(entry, str) and _INPUT_DIM.fullmatch(entry)):
            raise bad(where, f"shape entry {entry!r} is neither a non-negative int nor 'input:<axis>' "
                             "(e.g. 'input:-1', or 'input1:0' for the second input)")
    return tuple(value)


def _flag(value: object, where: str, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(where, f"must be true or false, got {value!r}", "TypeError")
    return value


def _check_keys(item: object, allowed: set[str], required: set[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise bad(where, f"must be an object, got {type(item).__name__}")
    unknown, missing = set(item) - allowed, required - set(item)
    if unknown:
        raise bad(where, f"unknown field {sorted(unknown)[0]!r}; fields: {', '.join(sorted(allowed))}")
    if missing:
        raise bad(where, f"missing field {sorted(missing)[0]!r}")
    return item


def _value(item: dict[str, Any], where: str) -> dict[str, Any] | None:
    if item.get("value") is None:
        return None
    if item.get("initializer") is not None:
        raise bad(where, "give an initializer or a value, not both")
    try:
        array = tensor_from_json(item["value"], 1 << 24)
    except FrameError as exc:
        raise bad(f"{where}.value", str(exc)) from None
    if array.dtype.kind != "f":
        raise bad(f"{where}.value", f"must hold floats, got {array.dtype.name}")
    return dict(item["value"])


def _variable(item: object, where: str) -> VariableDecl:
    keys = {"name", "shape", "dtype", "initializer", "value", "regularizer", "trainable"}
    data = _check_keys(item, keys, {"name", "shape", "dtype"}, where)
    name = data["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad(f"{where}.name", f"must match {_NAME.pattern}, got {name!r}")
    if data["dtype"] not in FLOAT_DTYPES:
        raise bad(f"{where}.dtype", f"must be one of {', '.join(FLOAT_DTYPES)}, got {data['dtype']!r}")
    init = data.get("initializer")
    return VariableDecl(name, _shape(data["shape"], f"{where}.shape"), data["dtype"],
                        _flag(data.get("trainable"), f"{where}.trainable", default=True),
                        None if init is None else initializer(init, f"{where}.initializer"),
                        _value(data, where), regularizer(data.get("regularizer"), f"{where}.regularizer"))


def parse_variables(value: object) -> list[VariableDecl]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad("config.variables", "must be a list of variable specs")
    decls = [_variable(item, f"config.variables[{i}]") for i, item in enumerate(value)]
    names = [d.name for d in decls]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise bad(f"config.variables[{i}].name", f"variable {name!r} is declared twice")
    return decls


def _output_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad(where, f"must name a graph output, got {value!r}")
    return value


def parse_losses(value: object) -> list[LossDecl]:
    if not isinstance(value, (list, type(None))):
        raise bad("config.losses", "must be a list of {output, conditional}")
    out = []
    for i, item in enumerate(value or []):
        where = f"config.losses[{i}]"
        data = _check_keys(item, {"output", "conditional"}, {"output", "conditional"}, where)
        out.append(LossDecl(_output_name(data["output"], f"{where}.output"),
                            _flag(data["conditional"], f"{where}.conditional", default=True)))
    return out


def _momentum(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise bad(where, f"must be null (assign) or a number in [0, 1], got {value!r}")
    return float(value)


def parse_updates(value: object) -> list[UpdateDecl]:
    if not isinstance(value, (list, type(None))):
        raise bad("config.updates", "must be a list of {output, variable, momentum?}")
    out = []
    for i, item in enumerate(value or []):
        where = f"config.updates[{i}]"
        data = _check_keys(item, {"output", "variable", "momentum"}, {"output", "variable"}, where)
        variable = data["variable"]
        if not isinstance(variable, str):
            raise bad(f"{where}.variable", f"must be a variable name, got {variable!r}")
        out.append(UpdateDecl(_output_name(data["output"], f"{where}.output"), variable,
                              _momentum(data.get("momentum"), f"{where}.momentum")))
    return out


def _spec(item: object, where: str) -> InputSpec:
    data = _check_keys(item, _SPEC_KEYS, set(), where)
    for key in ("ndim", "min_ndim", "max_ndim"):
        if data.get(key) is not None and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            raise bad(f"{where}.{key}", f"must be an int, got {data[key]!r}")
    axes = data.get("axes") or {}
    if not isinstance(axes, dict) or not all(
            isinstance(v, int) and re.fullmatch(r"-?\d+", str(k)) for k, v in axes.items()):
        raise bad(f"{where}.axes", "must map axis numbers to ints")
    shape = data.get("shape")
    if shape is not None and (not isinstance(shape, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape)):
        raise bad(f"{where}.shape", "must be a list of ints or nulls")
    if data.get("dtype") is not None and data["dtype"] not in FLOAT_DTYPES:
        raise bad(f"{where}.dtype", f"must be one of {', '.join(FLOAT_DTYPES)}")
    spec = InputSpec.from_json(data)
    assert spec is not None
    return spec


def parse_input_spec(value: object) -> InputSpec | list[InputSpec] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [_spec(item, f"config.input_spec[{i}]") for i, item in enumerate(value)]
    return _spec(value, "config.input_spec")


def normalize_config(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The config as stored: every field present and in plain JSON; the model is checked elsewhere."""
    unknown = set(kwargs) - set(CONFIG_KEYS)
    if unknown:
        raise InvalidArgument(f"('Keyword argument not understood:', '{sorted(unknown)[0]}')",
                              code="unknown_argument", exception="TypeError")
    class_name = kwargs.get("class_name")
    if class_name is not None and (not isinstance(class_name, str) or not _CLASS_NAME.fullmatch(class_name)):
        raise bad("config.class_name", f"must be a Python class name, got {class_name!r}")
    training = kwargs.get("training_input")
    if training is not None and not isinstance(training, str):
        raise bad("config.training_input", f"must name a graph input, got {training!r}")
    spec = parse_input_spec(kwargs.get("input_spec"))
    return {
        "model": kwargs.get("model"),
        "variables": [_variable_json(d) for d in parse_variables(kwargs.get("variables"))],
        "losses": [{"output": d.output, "conditional": d.conditional} for d in parse_losses(kwargs.get("losses"))],
        "updates": [{"output": d.output, "variable": d.variable, "momentum": d.momentum}
                    for d in parse_updates(kwargs.get("updates"))],
        "input_spec": None if spec is None else (
            [s.to_json() for s in spec] if isinstance(spec, list) else spec.to_json()),
        "training_input": training, "class_name": class_name,
        "batch_separable": _flag(kwargs.get("batch_separable"), "config.batch_separable", default=False),
        "activity_regularizer": regularizer(kwargs.get("activity_regularizer"), "activity_regularizer"),
    }


def _variable_json(d: VariableDecl) -> dict[str, Any]:
    return {"name": d.name, "shape": list(d.shape), "dtype": d.dtype, "trainable": d.trainable,
            "initializer": d.initializer, "value": d.value, "regularizer": d.regularizer}
