"""``tf.gradients``: recorded as one ``Gradients`` node the server expands into backward ops."""

from __future__ import annotations

from typing import Any

from layerserve.compat.v1 import math_ops
from layerserve.compat.v1.graph import DOMAIN, Tensor, get_default_graph

__all__ = ["gradients"]


# TF's ops whose registered gradient is None: an x reached only through them has no gradient
_NO_GRADIENT = frozenset({"StopGradient", "Floor", "Ceil", "Round", "FloorDiv"})


def _reaching(ys: list[Tensor], stop: set[str]) -> set[str]:
    """Names of the tensors some y depends on through float ops (stop_gradient cuts)."""
    seen: set[str] = set()
    stack = list(ys)
    while stack:
        t = stack.pop()
        if t.name in seen or t.name in stop:
            continue
        seen.add(t.name)
        op = t.op
        if op is None or op.type in _NO_GRADIENT:
            continue
        stack.extend(i for i in [*op.inputs, *op.deps] if i.dtype.is_floating)
    return seen


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients", colocate_gradients_with_ops: bool = False,
              gate_gradients: bool = False, aggregation_method: Any = None, stop_gradients: Any = None,
              unconnected_gradients: Any = "none") -> list[Tensor | None]:
    """d(sum of ys) / d xs, one entry per x: None where x does not reach any y."""
    y_list = [math_ops.convert_to_tensor(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]
    x_list = [math_ops.convert_to_tensor(x) for x in (xs if isinstance(xs, (list, tuple)) else [xs])]
    g_list = list(grad_ys) if isinstance(grad_ys, (list, tuple)) else [grad_ys] * len(y_list)
    if len(g_list) != len(y_list):
        raise ValueError(f"Passed {len(g_list)} grad_ys for {len(y_list)} ys")
    g_tensors = [None if g is None else math_ops.convert_to_tensor(g, like=y) for g, y in zip(g_list, y_list)]
    stop = {math_ops.convert_to_tensor(s).name for s in (stop_gradients or [])}
    reach = _reaching(y_list, stop)
    connected = [x.dtype.is_floating and x.name in reach for x in x_list]
    g = get_default_graph()
    with g.name_scope(name) as scope:
        op = g.new_operation("SymbolicGradient", scope[:-1] if scope else name, [*y_list, *x_list,
                                                                               *[t for t in g_tensors if t is not None]])
        outs: list[Tensor | None] = []
        names = []
        for x, ok in zip(x_list, connected):
            if ok:
                t = g.add_output(op, x.dtype, x.shape)
                outs.append(t)
                names.append(t.name)
            else:
                outs.append(None)
                names.append("")
        inputs: list[Tensor | str] = [*y_list, *x_list, *[t if t is not None else "" for t in g_tensors]]
        g.record(op, "Gradients", inputs, names, domain=DOMAIN, num_ys=len(y_list))
    return outs
