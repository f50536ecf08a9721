"""Where an apply runs: on the event loop when it is measured to be cheap, else in a thread.

A hop to a worker thread and back costs 0.1-0.6 ms on a loaded 2-core machine (two thread
wake-ups), more than a whole run of a small layer. So a layer whose recent runs took under
``INLINE_BUDGET_S`` runs inline, and so does one under ``IDLE_INLINE_BUDGET_S`` while it is
the only apply in flight: nothing else is waiting for the loop, and the hop would only add
latency. "The only one" is judged after yielding to the loop twice, so that requests already
received (read while the loop was busy, maybe with an inline run) reach this point first;
otherwise inline runs would keep concurrent requests from ever meeting in the batcher.
Inline runs are never batched and keep the padding rule, so their bits are those of a
batched or threaded run. Anything larger, or any apply while others are in flight, runs in
the pool, where it may be batched and never blocks the loop. See BENCHMARKS.md for the
figures behind the budgets.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from layerserve.server.plane import ApplyResult, DataPlane
from layerserve.server.plane.apply import Resolved
from layerserve.server.plane.pinned import apply_pinned
from layerserve.server.runtime.cancel import cancel, run_scope

__all__ = ["IDLE_INLINE_BUDGET_S", "INLINE_BUDGET_S", "INLINE_MAX_ELEMENTS", "apply", "cancellable", "in_thread",
           "off_loop_if_large"]

T = TypeVar("T")

INLINE_BUDGET_S = 150e-6
IDLE_INLINE_BUDGET_S = 1e-3
INLINE_MAX_ELEMENTS = 16384
# As many threads as anyio's default limiter: requests waiting in the batcher hold one each.
_POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="layerserve-apply")
_in_flight = 0  # applies in progress in this process (one event loop)


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in the apply pool, in a copy of this context (the request id follows)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_POOL, call)


async def apply(plane: DataPlane, graph: str, layer: str, inputs: list[np.ndarray], *, training: bool | None,
                refs: bool = True, checkpoint: str | None = None) -> ApplyResult:
    """``plane.apply``, inline or in the pool (see the module's docstring); an apply pinned to a
    ``checkpoint`` always in the pool (it may read the checkpoint from the store)."""
    global _in_flight
    if checkpoint is not None:
        return await cancellable(functools.partial(apply_pinned, plane, graph, layer, inputs, checkpoint,
                                                    training=training, refs=refs))
    _in_flight += 1
    try:
        revision = await plane.store.head_revision_async(graph)  # a shared store's version check, off the threads
        resolved = plane.resolve_cached(graph, layer, revision)  # looked up once, here or in the pool
        if resolved is not None and await _inline(plane, resolved, inputs, training=training):
            return plane.apply(graph, layer, inputs, training=training, batch=False, revision=revision, refs=refs,
                               resolved=resolved)
        run = functools.partial(plane.apply, graph, layer, inputs, training=training, batch=True, revision=revision,
                                refs=refs, resolved=resolved)
        return await cancellable(run)
    finally:
        _in_flight -= 1


async def cancellable(fn: Callable[..., T], *args: object) -> T:
    """``in_thread``; when the request gives up (its timeout, its client gone), the ONNX
    Runtime runs made for it are terminated, so that its thread comes back to the pool."""
    with run_scope() as scope:
        try:
            return await in_thread(fn, *args)
        except asyncio.CancelledError:
            cancel(scope)
            raise


async def _inline(plane: DataPlane, resolved: Resolved, inputs: list[np.ndarray], *, training: bool | None) -> bool:
    """Whether this apply runs on the loop (see the module's docstring)."""
    if sum(x.size for x in inputs) > INLINE_MAX_ELEMENTS:
        return False
    if plane.runs_inline(resolved, inputs, training=training, budget_s=INLINE_BUDGET_S):
        return True
    if _in_flight > 1 or not plane.runs_inline(resolved, inputs, training=training, budget_s=IDLE_INLINE_BUDGET_S):
        return False
    for _ in range(2):  # the loop reads what has arrived, then those requests run up to here
        await asyncio.sleep(0)
    return _in_flight == 1


async def off_loop_if_large(elements: int, fn: Callable[..., T], *args: object) -> T:
    """Per-element work (JSON tensors) runs in the pool once it would hold up the loop."""
    if elements <= INLINE_MAX_ELEMENTS:
        return fn(*args)
    return await in_thread(fn, *args)
