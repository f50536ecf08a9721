"""Uploaded models are validated in a child process, within a deadline.

ONNX's checker and shape inference hold the GIL for as long as they run, and a model of a few
hundred kilobytes can keep them busy for minutes (one ``Concat`` of 10^5 inputs of rank 10^4
merges 10^9 dims) while staying within the node budget. In the server's process that would
freeze the event loop (``/healthz`` included) and keep a core busy after the request got its
answer. So a custom layer's whole validation, the first ONNX Runtime session build included,
runs in a child process forked from a preloaded fork server (a few milliseconds to start): the
request's thread waits on a pipe without the GIL, and a child past the deadline is killed, which
frees its core at once. At most ``slots`` validations run at a time; a request that cannot get
a slot within ``SLOT_WAIT_S`` is told to retry (503), so that a burst of hostile uploads holds
few of the server's threads (readiness and other requests need them too). The child also gets
the deadline as its CPU limit, so it cannot outlive a server that died meanwhile by much.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.forkserver
import resource
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from layerserve.server.errors import InvalidArgument, LayerServeError, ProcessingTimeout
from layerserve.server.layers import kind_for
from layerserve.server.layers.base import LayerKind
from layerserve.server.runtime.model_check import check_loadable
from layerserve.server.runtime.providers import ProviderSelection
from layerserve.server.runtime.sessions import SessionCache

__all__ = ["DEFAULT_TIMEOUT_S", "SLOT_WAIT_S", "ModelVetting", "VettingJob"]

DEFAULT_TIMEOUT_S = 10.0
SLOT_WAIT_S = 1.0
_CONTEXT = multiprocessing.get_context("forkserver")
# Imported once by the fork server, so that every child starts with onnx and ONNX Runtime loaded.
_PRELOAD = [__name__]
_preloaded = threading.Lock()


@dataclass(frozen=True)
class VettingJob:
    """Everything a child needs: it shares nothing with the server but what is sent here."""

    class_name: str
    config: dict[str, Any]
    limits: dict[str, Any]  # the kind's class-level limits, as the server's settings set them
    providers: ProviderSelection
    intra_op_threads: int = 0
    cpu_arena: bool = False
    cpu_limit_s: int = 60


def _vet(job: VettingJob) -> LayerKind:
    """In the child: the kind, validated, and its models loaded once by ONNX Runtime."""
    cls = kind_for(job.class_name)
    for name, value in job.limits.items():
        setattr(cls, name, value)
    kind = cls.from_kwargs(job.config)
    sessions = SessionCache(job.providers, intra_op_threads=job.intra_op_threads, cpu_arena=job.cpu_arena)
    check_loadable(sessions, kind.models_to_check())
    return kind


def _child(sender: Connection, job: VettingJob) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (job.cpu_limit_s, job.cpu_limit_s + 1))
    try:
        result: tuple[bool, Any] = (True, _vet(job))
    except LayerServeError as exc:
        result = (False, exc)
    except Exception as exc:  # a defect: the server reports it as it would have in-process
        result = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
    sender.send(result)
    sender.close()


def _too_slow(timeout_s: float) -> InvalidArgument:
    return InvalidArgument(f"custom layer config.model: validating the model took longer than {timeout_s:g} s "
                           "(--model-validation-timeout-s); it was stopped", code="invalid_custom_layer",
                           field="config.model", limit_s=timeout_s)


@dataclass
class ModelVetting:
    """Validation of uploaded models in child processes (see the module docstring)."""

    sessions: SessionCache
    timeout_s: float = DEFAULT_TIMEOUT_S
    slots: int = 2
    _free: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self._free = threading.BoundedSemaphore(self.slots)

    @staticmethod
    def warm() -> None:
        """Start the fork server now (it imports onnx and ONNX Runtime: a second or two), not
        at the first upload."""
        with _preloaded:
            _CONTEXT.set_forkserver_preload(_PRELOAD)
            multiprocessing.forkserver.ensure_running()

    def kind(self, cls: type[LayerKind], config: dict[str, Any]) -> LayerKind:
        """``cls.from_kwargs(config)`` with its models loadable, or its 4xx, within the deadline."""
        deadline = time.monotonic() + self.timeout_s
        if not self._free.acquire(timeout=min(SLOT_WAIT_S, self.timeout_s)):
            raise ProcessingTimeout(f"the server is busy validating other uploaded models (at most {self.slots} at "
                                    "a time); retry later")
        try:
            self.warm()
            return self._in_child(self._job(cls, config), deadline)
        finally:
            self._free.release()

    def _job(self, cls: type[LayerKind], config: dict[str, Any]) -> VettingJob:
        limits = {name: getattr(cls, name) for name in dir(cls)
                  if name.startswith("max_") and isinstance(getattr(cls, name), int | float)}
        return VettingJob(cls.class_name, config, limits, self.sessions.providers, self.sessions.intra_op_threads,
                          self.sessions.cpu_arena, cpu_limit_s=max(1, math.ceil(self.timeout_s)))

    def _in_child(self, job: VettingJob, deadline: float) -> LayerKind:
        receiver, sender = _CONTEXT.Pipe(duplex=False)
        child = _CONTEXT.Process(target=_child, args=(sender, job), name="layerserve-validation", daemon=True)
        try:
            child.start()
            sender.close()
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                raise _too_slow(self.timeout_s)
            try:
                ok, payload = receiver.recv()
            except EOFError:  # it died: its CPU limit, the OOM killer, a crash inside onnx
                raise InvalidArgument(f"custom layer config.model: validating the model stopped the validating "
                                      f"process (exit code {_exit_code(child)})", code="invalid_custom_layer",
                                      field="config.model") from None
        finally:
            sender.close()
            _stop(child)
            receiver.close()
        if not ok:
            raise payload
        assert isinstance(payload, LayerKind)
        return payload


def _exit_code(child: BaseProcess) -> int | None:
    child.join(1.0)
    return child.exitcode


def _stop(child: BaseProcess) -> None:
    """Kill the child (whatever it was doing) and reap it: its core and memory come back now."""
    if child.pid is not None:
        child.kill()
        child.join()
    child.close()
