"""The op surface the training code is written in: ``layerserve.compat.v1`` itself.

Optimizers, schedules and clipping use only TensorFlow's public ``tf.compat.v1`` names
(``get_variable``, ``assign_sub``, ``control_dependencies`` ...), so an update is recorded like
any user op and runs in the same request and commit as the rest of a training step. ``use``
swaps the module (the cross-check against TensorFlow runs the same code on ``tf.compat.v1``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["tf", "use"]

_override: ModuleType | None = None


def tf() -> Any:
    return _override if _override is not None else importlib.import_module("layerserve.compat.v1")


def use(module: ModuleType | None) -> None:
    """Run the training code on ``module`` instead (None: back to ``layerserve.compat.v1``)."""
    global _override
    _override = module


def base_dtype(dtype: Any) -> Any:
    return getattr(dtype, "base_dtype", dtype)


def op_name(variable: Any) -> str:
    """A variable's op name: its tensor name without ``:0``."""
    return str(variable.name).split(":")[0]


def unique_name(base: str, taken: set[str]) -> str:
    """TF's uniquifying: ``base``, then ``base_1``, ``base_2`` ..."""
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def variable_names() -> set[str]:
    ops = tf()
    names = {op_name(v) for v in ops.global_variables()}
    local = getattr(ops, "local_variables", None)
    if local is not None:
        names.update(op_name(v) for v in local())
    return names


def new_variable(scope: str, name: str, shape: list[int], dtype: Any, initializer: Any) -> Any:
    """A non-trainable variable named exactly ``scope/name``, whatever scope is open (a fresh
    VariableScope object: no reuse, initializer or regularizer inherited)."""
    ops = tf()
    with ops.variable_scope(ops.VariableScope(ops.AUTO_REUSE, name=scope)):
        return ops.get_variable(name, shape=shape, dtype=dtype, initializer=initializer, trainable=False)
