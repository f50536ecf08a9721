"""Where an apply runs: on the event loop when it is measured to be cheap, else in a thread.

A hop to the thread pool costs 0.1-0.6 ms, more than a whole run of a small layer, so a
layer whose recent runs took under ``INLINE_BUDGET_S`` runs inline (never batched; it is
over before a batch could form). Anything larger runs in the pool, where it may be
batched and never blocks the loop. See BENCHMARKS.md for the figures behind the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.core.dataplane import ApplyResult, DataPlane

__all__ = ["INLINE_BUDGET_S", "INLINE_MAX_ELEMENTS", "apply", "off_loop_if_large"]

T = TypeVar("T")

INLINE_BUDGET_S = 150e-6
INLINE_MAX_ELEMENTS = 16384


async def apply(request: Request, graph: str, layer: str, inputs: list[np.ndarray],
                training: bool | None) -> ApplyResult:
    plane: DataPlane = request.app.state.plane
    revision = await plane.store.head_revision_async(graph)  # a shared store's version check, off the threads
    small = sum(x.size for x in inputs) <= INLINE_MAX_ELEMENTS
    if small and plane.runs_inline(graph, layer, inputs, training, INLINE_BUDGET_S, revision):
        return plane.apply(graph, layer, inputs, training, batch=False, revision=revision)
    return await run_in_threadpool(plane.apply, graph, layer, inputs, training, True, revision)


async def off_loop_if_large(elements: int, fn: Callable[..., T], *args: object) -> T:
    """Per-element work (JSON tensors) runs in the pool once it would hold up the loop."""
    if elements <= INLINE_MAX_ELEMENTS:
        return fn(*args)
    return await run_in_threadpool(fn, *args)
