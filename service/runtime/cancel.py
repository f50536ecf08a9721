"""Stopping ONNX Runtime runs that nobody waits for any more.

Every session run goes through ``guarded_run`` with a ``RunOptions`` of its own, registered here
for as long as it runs. A request that gives up (its timeout fired, its client left) cancels its
``RunScope``: the runs made on its behalf get ``terminate`` set, ORT stops them between two
kernels, and the worker thread returns to the pool. ``terminate_all`` does the same for every
run at shutdown, so that SIGTERM never waits for work whose answer nobody will read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import onnxruntime as ort

from layerserve.server.errors import ProcessingTimeout

__all__ = ["RunScope", "cancel", "guarded_run", "run_scope", "terminate_all"]

T = TypeVar("T")


class RunScope:
    """The runs made for one request; ``cancel`` terminates them, and any it would start."""

    def __init__(self) -> None:
        self.cancelled = False


_current: ContextVar[RunScope | None] = ContextVar("layerserve_run_scope", default=None)
_lock = threading.Lock()
_active: dict[int, tuple[ort.RunOptions, RunScope | None]] = {}
_closing = False


@contextmanager
def run_scope() -> Iterator[RunScope]:
    """A scope for the runs started in this context (threads get a copy of the context)."""
    scope = RunScope()
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def cancel(scope: RunScope) -> None:
    with _lock:
        scope.cancelled = True
        for options, owner in _active.values():
            if owner is scope:
                options.terminate = True


def terminate_all() -> None:
    """Shutdown: stop every run now, and every run that would start from now on."""
    global _closing
    with _lock:
        _closing = True
        for options, _ in _active.values():
            options.terminate = True


def guarded_run(run: Callable[[ort.RunOptions], T]) -> T:
    """``run(options)`` with ``options`` registered, so that it can be terminated; a run that
    was terminated reports the processing timeout (503), whatever ORT said."""
    scope = _current.get()
    options = ort.RunOptions()
    key = id(options)
    with _lock:
        options.terminate = _closing or (scope is not None and scope.cancelled)
        _active[key] = (options, scope)
    try:
        return run(options)
    except Exception:
        if options.terminate:
            raise ProcessingTimeout("the run was stopped: its request timed out or the server is stopping") from None
        raise
    finally:
        with _lock:
            del _active[key]
