"""Memory figures of the runtime, for ``/metrics``: resident variables, sessions, device memory.

``memory_report(executor)`` returns plain numbers keyed by stable names; device figures appear
only where the device exposes them (NVIDIA's NVML, from the ``nvidia-ml-py`` package in the
``gpu`` extra), so a CPU server reports just what it holds itself.
"""

from __future__ import annotations

import logging
from typing import Any

from layerserve.server.runtime.executor import Executor

__all__ = ["device_memory", "memory_report"]

log = logging.getLogger("layerserve.runtime")


def device_memory(device: str, device_id: int) -> dict[str, int]:
    """``device_used_bytes`` / ``device_total_bytes`` of a CUDA device, or nothing where not exposed."""
    if device != "cuda":
        return {}
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(device_id))
            return {"device_used_bytes": int(info.used), "device_total_bytes": int(info.total)}
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # no NVML library or no such device: the figure is simply absent
        log.debug("device memory not available: %s", exc)
        return {}


def memory_report(executor: Executor) -> dict[str, Any]:
    """Keys: sessions_cached, resident_layers, resident_variable_bytes, device ('cpu'/'cuda'),
    and device_used_bytes / device_total_bytes where the device reports them."""
    resident = executor.resident
    providers = executor.sessions.providers
    report: dict[str, Any] = {
        "sessions_cached": len(executor.sessions),
        "sessions_bytes": executor.sessions.nbytes,
        "resident_layers": len(resident) if resident is not None else 0,
        "resident_variable_bytes": resident.resident_bytes() if resident is not None else 0,
        "device": resident.device if resident is not None else "cpu",
    }
    report.update(device_memory(providers.device, providers.device_id))
    return report
