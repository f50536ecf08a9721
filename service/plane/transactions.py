"""How a write to a graph is made: all or nothing, one writer at a time, retried on a lost race.

A mutation holds the graph's lock and undoes every change made in memory when anything fails
(a check or the store's commit), so that a failed request changes nothing. With a store that
other replicas write too, a write that loses the race for the store's compare-and-set is run
again on the fresh copy (``retried``), a bounded number of times.
"""

from __future__ import annotations

import contextvars
import functools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from layerserve.server.config import Settings
from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import Layer
from layerserve.server.errors import Conflict, NotFound
from layerserve.server.store.base import StaleGraph

__all__ = ["COMMIT_CAUSE", "check_version", "layer_gone", "mutation", "retried"]

# What the commits of the operation in progress are for, as the version history names it.
COMMIT_CAUSE: contextvars.ContextVar[str] = contextvars.ContextVar("commit_cause", default="")
_CAUSES = {"run_updates": "updates:run", "patch_layer": "patch", "create_layer": "create", "delete_layer": "delete",
           "_use_up_name": "create", "_run_and_commit": "program", "create_variable": "create"}

F = TypeVar("F", bound=Callable[..., Any])


class _Configured(Protocol):
    settings: Settings


def retried(method: F) -> F:
    """Run a write again on the store's fresh copy when another replica committed first."""

    cause = _CAUSES.get(method.__name__, method.__name__)

    @functools.wraps(method)
    def wrapper(self: _Configured, *args: Any, **kwargs: Any) -> Any:
        attempts = max(1, self.settings.write_retries)
        for attempt in range(attempts):
            token = COMMIT_CAUSE.set(COMMIT_CAUSE.get() or cause)
            try:
                return method(self, *args, **kwargs)
            except StaleGraph:
                kwargs.pop("resolved", None)  # a layer looked up before belongs to the copy that lost the race
                if attempt + 1 == attempts:
                    raise Conflict(f"the graph kept changing under this write ({attempts} attempts); retry it",
                                   code="write_conflict") from None
                time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))  # desynchronise the racers
            finally:
                COMMIT_CAUSE.reset(token)
        raise AssertionError("unreachable")

    return wrapper  # type: ignore[return-value]


def check_version(g: Graph, layer: Layer, expected: int | None) -> None:
    """``If-Match``: refuse a write computed against another version of the layer."""
    if expected is not None and g.layer_version(layer) != expected:
        raise Conflict(f"layer {layer.name!r} is at version {g.layer_version(layer)}, not {expected}",
                       code="version_conflict", version=g.layer_version(layer))


def layer_gone(g: Graph, layer: Layer) -> NotFound:
    """The error for a layer deleted between its lookup and its use."""
    return NotFound(f"graph {g.name!r} has no layer {layer.id!r} (deleted)", code="layer_not_found")


@contextmanager
def mutation(g: Graph, *touched: Layer) -> Iterator[None]:
    """Hold the graph's lock; when anything fails (a check or the store's commit), undo
    every change made in memory, so that a failed request changes nothing. The ``touched``
    layers were resolved before the lock: one deleted meanwhile is 404, as if it had been
    deleted first."""
    with g.lock:
        for layer in touched:
            if g.layers.get(layer.id) is not layer:
                raise layer_gone(g, layer)
        rollback = g.checkpoint(touched)
        try:
            yield
        except BaseException:
            rollback()
            raise
