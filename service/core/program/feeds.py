"""A layer's variables in its graph's layout, as ONNX ops on the stored values.

Convolutions keep TF's kernel layout in the store and feed ONNX's on the host
(``runtime_feeds``); a program that differentiates through one needs the same change of layout
inside the graph, so that gradients reach the stored variable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["graph_feeds"]

_NATIVE = ("float16", "float32")
Node = Callable[..., str]  # (op_type, inputs, **attrs) -> output name
Ints = Callable[[list[int]], str]  # a constant int64 vector


def graph_feeds(class_name: str, values: dict[str, tuple[str, tuple[int, ...], str]], node: Node,
                ints: Ints) -> dict[str, str] | None:
    """Graph-layout tensors per short name from ``values`` (short -> (tensor, shape, dtype)); None
    for a class this module does not know (its variables are then fed from the host)."""
    if class_name in ("Conv1D", "Conv2D", "Conv3D"):
        kernel, shape, dtype = values["kernel"]
        n = len(shape) - 2
        out = node("Transpose", [kernel], perm=[n + 1, n, *range(n)]) if dtype in _NATIVE else \
            node("Reshape", [kernel, ints([-1, shape[-1]])])
        return {**_plain(values), "kernel": out}
    if class_name in ("Conv2DTranspose", "Conv3DTranspose"):
        kernel, shape, dtype = values["kernel"]
        n = len(shape) - 2
        if dtype in _NATIVE:
            return {**_plain(values), "kernel": node("Transpose", [kernel], perm=[n + 1, n, *range(n)])}
        swapped = node("Transpose", [kernel], perm=[*range(n), n + 1, n])
        return {**_plain(values), "kernel": node("Reshape", [swapped, ints([-1, shape[-2]])])}
    if class_name in ("SeparableConv1D", "SeparableConv2D"):
        return {**_plain(values), **_separable(values, node, ints)}
    return None


def _plain(values: dict[str, tuple[str, tuple[int, ...], str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items()}


def _separable(values: dict[str, Any], node: Node, ints: Ints) -> dict[str, str]:
    depthwise, dshape, dtype = values["depthwise_kernel"]
    pointwise, pshape, _ = values["pointwise_kernel"]
    n = len(dshape) - 2
    channels, multiplier = dshape[-2:]
    if dtype in _NATIVE:
        d = node("Transpose", [depthwise], perm=[n, n + 1, *range(n)])
        d = node("Reshape", [d, ints([channels * multiplier, 1, *dshape[:-2]])])
        p = node("Transpose", [pointwise], perm=[n + 1, n, *range(n)])
        return {"depthwise_kernel": d, "pointwise_kernel": p}
    return {"depthwise_kernel": node("Reshape", [depthwise, ints([-1, channels, multiplier])]),
            "pointwise_kernel": node("Reshape", [pointwise, ints([-1, pshape[-1]])])}
