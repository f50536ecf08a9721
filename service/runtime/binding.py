"""Device-resident execution: variables kept as OrtValues on the device, runs through IOBinding.

With CUDA leading, a layer's graph-layout variables are copied to the GPU once per version of
their values and stay there; each run binds them, copies the input in, lets ONNX Runtime
allocate the outputs on the device and copies all outputs back in one step. On the CPU (device
``cpu``) the very same path runs, so the CPU test suite exercises it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as InvalidArgumentError

from layerserve.server.errors import InvalidArgument
from layerserve.server.runtime.cancel import guarded_run
from layerserve.server.runtime.providers import ProviderSelection
from layerserve.server.runtime.sessions import CompiledLayer

__all__ = ["BINDING_MODES", "ResidentVariables", "binding_enabled", "run_bound"]

BINDING_MODES = ("auto", "on", "off")


def _contiguous(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: that turns a 0-d array (a scalar variable, the training flag) into 1-d.
    return np.asarray(array, order="C")


class ResidentVariables:
    """Per layer: the OrtValues made from one version of its graph-layout variable feeds."""

    def __init__(self, device: str = "cpu", device_id: int = 0) -> None:
        self.device = device
        self.device_id = device_id
        # layer id -> (the host feeds the values were made from, the device values)
        self._values: dict[str, tuple[Mapping[str, np.ndarray], dict[str, ort.OrtValue]]] = {}
        self._lock = threading.Lock()

    def values(self, layer_key: str, feeds: Mapping[str, np.ndarray]) -> dict[str, ort.OrtValue]:
        """The device copies of ``feeds``; made again only when the feeds object changes."""
        with self._lock:
            cached = self._values.get(layer_key)
        if cached is not None and cached[0] is feeds:
            return cached[1]
        made = {name: ort.OrtValue.ortvalue_from_numpy(_contiguous(array), self.device, self.device_id)
                for name, array in feeds.items()}
        with self._lock:
            self._values[layer_key] = (feeds, made)  # the old version's device memory goes with it
        return made

    def forget(self, layer_key: str) -> None:
        with self._lock:
            self._values.pop(layer_key, None)

    def resident_bytes(self) -> int:
        """Bytes of variable values held on the device (the host feeds' sizes, which they copy)."""
        with self._lock:
            entries = list(self._values.values())
        return sum(int(np.asarray(a).nbytes) for feeds, _ in entries for a in feeds.values())

    def __len__(self) -> int:
        return len(self._values)


def run_bound(compiled: CompiledLayer, device_values: Mapping[str, ort.OrtValue],
              host_feeds: Mapping[str, np.ndarray], device: str, device_id: int) -> list[np.ndarray]:
    """One run with the variables bound in place; the outputs come back to the host together."""
    binding = compiled.session.io_binding()  # one per run: bindings are not shared across threads
    for name, value in device_values.items():
        binding.bind_ortvalue_input(name, value)
    held = {name: _contiguous(array) for name, array in host_feeds.items()}  # alive until the run ends
    for name, array in held.items():
        binding.bind_cpu_input(name, array)
    for name in compiled.output_names:
        binding.bind_output(name, device, device_id)
    try:
        guarded_run(lambda options: compiled.session.run_with_iobinding(binding, options))
    except InvalidArgumentError as exc:  # the request's inputs, as CompiledLayer.run says: a 422
        raise InvalidArgument(f"ONNX Runtime rejected the inputs: {exc}", code="execution_rejected") from None
    outputs: list[np.ndarray] = binding.copy_outputs_to_cpu()
    return outputs


def binding_enabled(mode: str, providers: ProviderSelection) -> bool:
    """``auto`` binds when a device provider (CUDA, TensorRT) leads; ``on``/``off`` force it."""
    if mode not in BINDING_MODES:
        raise ValueError(f"io_binding is one of {', '.join(BINDING_MODES)}, got {mode!r}")
    return mode == "on" or (mode == "auto" and providers.device != "cpu")
