"""TF1's learning-rate schedules (``tf.train.exponential_decay`` & co.) as graph ops of the global
step: fetched with a train op they give the rate that step used (the step before its increment)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from layerserve.compat.v1.surface import tf

__all__ = [
    "cosine_decay", "exponential_decay", "inverse_time_decay", "natural_exp_decay", "piecewise_constant",
    "polynomial_decay",
]


def _progress(learning_rate: Any, global_step: Any, decay_steps: Any, schedule: str) -> tuple[Any, Any, Any]:
    """(rate tensor, global step as its dtype, decay steps as its dtype)."""
    if global_step is None:
        raise ValueError(f"global_step is required for {schedule}.")
    ops = tf()
    lr = ops.convert_to_tensor(learning_rate, name="learning_rate")
    return lr, ops.cast(global_step, lr.dtype), ops.cast(decay_steps, lr.dtype)


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Any:
    """``learning_rate * decay_rate ^ (global_step / decay_steps)`` (the exponent floored when staircase)."""
    ops = tf()
    with ops.name_scope(name or "ExponentialDecay"):
        lr, step, steps = _progress(learning_rate, global_step, decay_steps, "exponential_decay")
        p = step / steps
        if staircase:
            p = ops.floor(p)
        return ops.multiply(lr, ops.pow(ops.cast(decay_rate, lr.dtype), p))


def natural_exp_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Any:
    """``learning_rate * exp(-decay_rate * global_step / decay_steps)``."""
    ops = tf()
    with ops.name_scope(name or "NaturalExpDecay"):
        lr, step, steps = _progress(learning_rate, global_step, decay_steps, "natural_exp_decay")
        p = step / steps
        if staircase:
            p = ops.floor(p)
        return ops.multiply(lr, ops.exp(ops.negative(ops.cast(decay_rate, lr.dtype)) * p))


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                       staircase: bool = False, name: str | None = None) -> Any:
    """``learning_rate / (1 + decay_rate * global_step / decay_steps)``."""
    ops = tf()
    with ops.name_scope(name or "InverseTimeDecay"):
        lr, step, steps = _progress(learning_rate, global_step, decay_steps, "inverse_time_decay")
        p = step / steps
        if staircase:
            p = ops.floor(p)
        return ops.truediv(lr, 1 + ops.cast(decay_rate, lr.dtype) * p)


def polynomial_decay(learning_rate: Any, global_step: Any, decay_steps: Any, end_learning_rate: float = 0.0001,
                     power: float = 1.0, cycle: bool = False, name: str | None = None) -> Any:
    """``(lr - end) * (1 - step / decay_steps) ^ power + end``, the step capped at decay_steps
    (with ``cycle``, decay_steps grows to the next multiple of itself instead)."""
    ops = tf()
    with ops.name_scope(name or "PolynomialDecay"):
        lr, step, steps = _progress(learning_rate, global_step, decay_steps, "polynomial_decay")
        end, power_t = ops.cast(end_learning_rate, lr.dtype), ops.cast(power, lr.dtype)
        if cycle:
            multiplier = ops.where(ops.equal(step, 0), ops.ones_like(step), ops.ceil(step / steps))
            steps = steps * multiplier
        else:
            step = ops.minimum(step, steps)
        fraction = 1 - step / steps
        return ops.add((lr - end) * ops.pow(fraction, power_t), end)


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: float = 0.0,
                 name: str | None = None) -> Any:
    """``lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)``."""
    ops = tf()
    with ops.name_scope(name or "CosineDecay"):
        lr, step, steps = _progress(learning_rate, global_step, decay_steps, "cosine_decay")
        done = ops.minimum(step, steps) / steps
        cosine = 0.5 * (1.0 + ops.cos(math.pi * done))
        return ops.multiply(lr, (1 - alpha) * cosine + alpha)


def piecewise_constant(x: Any, boundaries: Sequence[Any], values: Sequence[Any], name: str | None = None) -> Any:
    """``values[0]`` while ``x <= boundaries[0]``, ``values[i+1]`` while ``boundaries[i] < x <= boundaries[i+1]``,
    ``values[-1]`` after the last boundary."""
    if len(boundaries) != len(values) - 1:
        raise ValueError("The length of boundaries should be 1 less than the length of values")
    ops = tf()
    with ops.name_scope(name or "PiecewiseConstant"):
        x_t = ops.convert_to_tensor(x)
        rates = [ops.convert_to_tensor(v) for v in values]
        result = rates[-1]
        for bound, rate in zip(reversed(boundaries), reversed(rates[:-1]), strict=True):
            result = ops.where(x_t <= ops.cast(bound, x_t.dtype), rate, result)
        return ops.identity(result)
