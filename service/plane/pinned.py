"""Applies pinned to a named checkpoint: the layer computes with the checkpoint's values
instead of the live ones, read-only (nothing is built, recorded or committed), so that a
canary and the live weights are served side by side."""

from __future__ import annotations

import numpy as np

from layerserve.protocol import input_ref
from layerserve.server.errors import Conflict, InvalidArgument, NotFound
from layerserve.server.layers.base import Signature
from layerserve.server.layers.kit.dtypes import check_float_input, dtype_name
from layerserve.server.plane.apply import ApplyResult, var_specs
from layerserve.server.plane.dataplane import DataPlane
from layerserve.server.plane.lifecycle import input_specs

__all__ = ["apply_pinned"]


def apply_pinned(plane: DataPlane, graph: str, ref: str, inputs: list[np.ndarray], checkpoint: str, *,
                 training: bool | None, batch: bool = True, refs: bool = False) -> ApplyResult:
    """``plane.apply`` with the values of ``checkpoint`` (see ``Checkpoints.values``)."""
    if plane.pinned_values is None:
        raise NotFound(f"no checkpoint {checkpoint!r}", code="checkpoint_not_found")
    values = plane.pinned_values(graph, checkpoint)
    g, layer = plane.layer(graph, ref)
    missing = [n for n in layer.variables if n not in values]
    if not layer.built or missing:
        raise Conflict(f"checkpoint {checkpoint!r} holds no value for layer {layer.name!r}"
                       + (f" (variable {missing[0]})" if missing else " (the layer is not built)"),
                       code="checkpoint_mismatch")
    if len(inputs) != layer.kind.num_inputs:
        raise InvalidArgument(f"layer {layer.name!r} takes {layer.kind.num_inputs} input(s), got {len(inputs)}",
                              code="wrong_input_count")
    for each in inputs:
        check_float_input(each, layer.class_name)
    training = bool(training) and layer.kind.takes_training
    specs = input_specs(layer)
    xs = [plane._check_input(layer, each, spec, k) for k, (each, spec) in enumerate(zip(inputs, specs, strict=False))]
    layer.kind.check_op(tuple(xs[0].shape), dtype_name(xs[0].dtype), training=training)
    sig = Signature(dtype_name(xs[0].dtype), tuple(xs[0].shape), training, var_specs(g, layer),
                    tuple(tuple(each.shape) for each in xs[1:]))
    plane._check_output_size(layer, tuple(xs[0].shape))
    outputs = plane.executor.run(layer, sig, xs[0], {n: values[n] for n in layer.variables}, batch=batch,
                                 more_inputs=xs[1:])
    ys = [outputs.pop("y"), *(outputs.pop(f"y{k}") for k in range(1, layer.kind.num_outputs))]
    return ApplyResult(ys, [input_ref(each) for each in inputs] if refs else None, layer, g.layer_version(layer))
