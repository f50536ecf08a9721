"""Session runs whose outputs are not copied: ``InferenceSession.run`` copies every output into a
new NumPy array (a training step's new variables and slots: about 10 MB for a small MLP, half a
millisecond); the arrays here view the memory ONNX Runtime allocated and keep it alive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

__all__ = ["run_uncopied"]


def run_uncopied(session: ort.InferenceSession, output_names: Sequence[str], inputs: Mapping[str, np.ndarray],
                 options: ort.RunOptions) -> list[np.ndarray]:
    """``session.run(output_names, inputs, options)``; on the CPU provider alone, without the
    copies (with a device provider, outputs may live on the device: the plain run)."""
    if session.get_providers() != ["CPUExecutionProvider"] or any(v.dtype == object for v in inputs.values()):
        return list(session.run(list(output_names), dict(inputs), options))
    # np.asarray(order="C"), not np.ascontiguousarray: that makes a 0-d array 1-d
    feeds = {k: ort.OrtValue.ortvalue_from_numpy(np.asarray(v, order="C")) for k, v in inputs.items()}
    return [value.numpy() for value in session.run_with_ort_values(list(output_names), feeds, options)]
