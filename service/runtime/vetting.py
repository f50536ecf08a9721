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
Registered programs (TF1 graph mode) have their shape inference measured the same way
(``ModelVetting.program``), with the same slots and deadline; that child is also stopped by a CPU
timer once it has spent the inference limit, since shape inference holding the GIL leaves nothing
in it that could stop sooner, so a hostile program costs a core no more than that limit.
Composing a program for a feed signature infers shapes in such a child too (``inferred``), under
the same CPU limit: a feed can make a registered program's inference costly (a rank read from a
fed vector), and what the server then repeats in its own process is what the child measured.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.forkserver
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import onnx

from layerserve.server.core.program import check_inference_cost
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


def _vet(job: VettingJob) -> LayerKind:
    """In the child: the kind, validated, and its models loaded once by ONNX Runtime."""
    cls = kind_for(job.class_name)
    for name, value in job.limits.items():
        setattr(cls, name, value)
    kind = cls.from_kwargs(job.config)
    sessions = SessionCache(job.providers, intra_op_threads=job.intra_op_threads, cpu_arena=job.cpu_arena)
    check_loadable(sessions, kind.models_to_check())
    return kind


def _child(sender: Connection, work: Callable[[], Any], cpu_limit_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit_s, cpu_limit_s + 1))
    try:
        result: tuple[bool, Any] = (True, work())
    except LayerServeError as exc:
        result = (False, exc)
    except Exception as exc:  # a defect: the server reports it as it would have in-process
        result = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
    sender.send(result)
    sender.close()


@dataclass(frozen=True)
class _Subject:
    """How the answers about one kind of upload read: what was validated, its error code, details."""

    what: str
    code: str
    details: dict[str, Any] = field(default_factory=dict)
    over_cpu: str = ""  # the refusal when the child's CPU timer stopped it

    def too_slow(self, timeout_s: float) -> InvalidArgument:
        return InvalidArgument(f"{self.what} took longer than {timeout_s:g} s (--model-validation-timeout-s); it was "
                               "stopped", code=self.code, limit_s=timeout_s, **self.details)

    def died(self, exit_code: int | None) -> InvalidArgument:
        if exit_code == -signal.SIGPROF and self.over_cpu:  # its CPU timer (see _measure_program)
            return InvalidArgument(self.over_cpu, code=self.code, **self.details)
        return InvalidArgument(f"{self.what} stopped the validating process (exit code {exit_code})", code=self.code,
                               **self.details)


_MODEL = _Subject("custom layer config.model: validating the model", "invalid_custom_layer",
                  {"field": "config.model"})
# CPU a child may spend besides the inference it measures: starting, and decoding and encoding
# models (a conservative rate, so that the inference limit is what refuses).
_PARSE_ALLOWANCE_S = 0.1
_BYTES_PER_CPU_S = 20e6


def _program_subject(max_inference_s: float) -> _Subject:
    return _Subject("validating the program", "program_too_large",
                    over_cpu=f"the program takes more than {max_inference_s:g} s of CPU in ONNX shape inference "
                             "(--max-model-inference-s): the server repeats it for every feed signature; it was "
                             "stopped")


def _compose_subject(max_inference_s: float) -> _Subject:
    return _Subject("composing the program for these feeds", "program_too_large",
                    over_cpu=f"composing the program for these feeds takes more than {max_inference_s:g} s of CPU in "
                             "ONNX shape inference (--max-model-inference-s); it was stopped")


def _cpu_timer(seconds: float) -> None:
    """In a child: killed by SIGPROF (its default action) once it has used ``seconds`` of CPU
    (0: no timer). Nothing else could stop it: shape inference holds the GIL throughout."""
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_PROF, seconds)


def _measure_program(data: bytes, max_inference_s: float) -> None:
    """In the child: the program's inference cost, within the CPU timer."""
    _cpu_timer(max_inference_s + _PARSE_ALLOWANCE_S + len(data) / _BYTES_PER_CPU_S)
    check_inference_cost(data, max_inference_s)
    _cpu_timer(0)


def _infer(data: bytes, cpu_s: float, *, data_prop: bool) -> tuple[bool, bytes | str]:
    """In the child: the inferred model's bytes, or what ONNX said was wrong."""
    _cpu_timer(cpu_s)
    model = onnx.load_from_string(data)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as exc:
        return False, str(exc)
    finally:
        _cpu_timer(0)
    return True, inferred.SerializeToString()


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
        payload = self._vetted(partial(_vet, self._job(cls, config)), _MODEL)
        assert isinstance(payload, LayerKind)
        return payload

    def program(self, data: bytes, *, max_inference_s: float) -> None:
        """422 when shape inference on the program (its bytes) costs more than ``max_inference_s``
        of CPU, or does not end within the deadline."""
        self._vetted(partial(_measure_program, data, max_inference_s), _program_subject(max_inference_s))

    def inferred(self, model: onnx.ModelProto, *, data_prop: bool = False,
                 max_inference_s: float) -> onnx.ModelProto:
        """``onnx.shape_inference.infer_shapes`` in a child, stopped past ``max_inference_s`` of
        CPU (422); ONNX's own refusals are raised as its ``InferenceError``."""
        data = model.SerializeToString()
        cpu_s = max_inference_s + _PARSE_ALLOWANCE_S + len(data) / _BYTES_PER_CPU_S  # decoding and encoding
        ok, result = self._vetted(partial(_infer, data, cpu_s, data_prop=data_prop), _compose_subject(max_inference_s))
        if not ok:
            raise onnx.shape_inference.InferenceError(result)
        return onnx.load_from_string(result)

    def _vetted(self, work: Callable[[], Any], subject: _Subject) -> Any:
        """``work()`` in a child within the deadline, once a slot is free."""
        deadline = time.monotonic() + self.timeout_s
        if not self._free.acquire(timeout=min(SLOT_WAIT_S, self.timeout_s)):
            raise ProcessingTimeout(f"the server is busy validating other uploaded models (at most {self.slots} at "
                                    "a time); retry later")
        try:
            self.warm()
            return self._in_child(work, deadline, subject)
        finally:
            self._free.release()

    def _job(self, cls: type[LayerKind], config: dict[str, Any]) -> VettingJob:
        limits = {name: getattr(cls, name) for name in dir(cls)
                  if name.startswith("max_") and isinstance(getattr(cls, name), int | float)}
        return VettingJob(cls.class_name, config, limits, self.sessions.providers, self.sessions.intra_op_threads,
                          self.sessions.cpu_arena)

    def _in_child(self, work: Callable[[], Any], deadline: float, subject: _Subject) -> Any:
        receiver, sender = _CONTEXT.Pipe(duplex=False)
        cpu_limit_s = max(1, math.ceil(self.timeout_s))
        child = _CONTEXT.Process(target=_child, args=(sender, work, cpu_limit_s), name="layerserve-validation",
                                 daemon=True)
        try:
            child.start()
            sender.close()
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                raise subject.too_slow(self.timeout_s)
            try:
                ok, payload = receiver.recv()
            except EOFError:  # it died: its CPU limit, the OOM killer, a crash inside onnx
                raise subject.died(_exit_code(child)) from None
        finally:
            sender.close()
            _stop(child)
            receiver.close()
        if not ok:
            raise payload
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
