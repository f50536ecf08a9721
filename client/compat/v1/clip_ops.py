"""``tf.clip_by_global_norm``, ``tf.clip_by_norm`` and ``tf.global_norm`` with TF's arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from layerserve.compat.v1.surface import tf

__all__ = ["clip_by_global_norm", "clip_by_norm", "global_norm"]


def global_norm(t_list: Sequence[Any], name: str | None = None) -> Any:
    """``sqrt(sum of every element squared)`` over the non-None tensors."""
    if isinstance(t_list, (str, bytes)) or not isinstance(t_list, Sequence):
        raise TypeError(f"`t_list` should be a sequence of tensors. Received {type(t_list)}.")
    ops = tf()
    with ops.name_scope(name or "global_norm"):
        halves = [ops.nn.l2_loss(ops.convert_to_tensor(t)) for t in t_list if t is not None]
        half = ops.reduce_sum(ops.stack(halves))
        return ops.sqrt(half * ops.constant(2.0, dtype=half.dtype), name="global_norm")


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Any], Any]:
    """Each tensor times ``clip_norm / max(global_norm, clip_norm)``; returns (clipped, global_norm).
    None entries stay None."""
    if isinstance(t_list, (str, bytes)) or not isinstance(t_list, Sequence):
        raise TypeError(f"`t_list` should be a sequence of tensors. Received {type(t_list)}.")
    ops = tf()
    t_list = list(t_list)
    with ops.name_scope(name or "clip_by_global_norm"):
        norm = global_norm(t_list) if use_norm is None else ops.convert_to_tensor(use_norm)
        limit = ops.cast(clip_norm, norm.dtype)
        scale = limit * ops.minimum(1.0 / norm, ops.constant(1.0, dtype=norm.dtype) / limit)
        scale = scale + (norm - norm)  # NaN when the norm is infinite, as TF
        clipped = [None if t is None else ops.identity(ops.convert_to_tensor(t) * ops.cast(scale, t.dtype))
                   for t in t_list]
    return clipped, norm


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Any:
    """``t * clip_norm / max(l2norm(t, axes), clip_norm)`` (zero norms left alone)."""
    ops = tf()
    with ops.name_scope(name or "clip_by_norm"):
        values = ops.convert_to_tensor(t)
        l2sum = ops.reduce_sum(values * values, axes, keepdims=True)
        positive = l2sum > 0
        safe = ops.where(positive, l2sum, ops.ones_like(l2sum))
        l2norm = ops.where(positive, ops.sqrt(safe), l2sum)
        limit = ops.cast(clip_norm, values.dtype)
        return ops.identity(values * limit / ops.maximum(l2norm, limit))
