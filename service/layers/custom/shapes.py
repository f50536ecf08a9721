"""``compute_output_shape`` for custom layers: ONNX shape inference on the uploaded graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import onnx

from layerserve.server.errors import IncompatibleInput
from layerserve.server.layers.base import VariableSpec
from layerserve.server.layers.custom.framing import data_inputs
from layerserve.server.layers.custom.validation import dims

__all__ = ["output_shape"]

Shape = tuple[int | None, ...]


def _set_dims(info: onnx.ValueInfoProto, shape: list[int | str | None]) -> None:
    tensor_shape = info.type.tensor_type.shape
    del tensor_shape.dim[:]
    for k, d in enumerate(shape):
        dim = tensor_shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        else:
            dim.dim_param = d or f"{info.name}_d{k}"


def output_shape(source: onnx.ModelProto, layer_inputs: Sequence[onnx.ValueInfoProto], output_name: str,
                 variables: Callable[[list[Shape]], list[VariableSpec]], input_shape: Shape) -> Shape:
    """The shape of output ``output_name`` for an input 0 of ``input_shape`` (None where
    unknown); ``variables`` gives the variables' specs for the inputs' shapes."""
    model = onnx.ModelProto()
    model.CopyFrom(source)
    del model.graph.value_info[:]
    inputs = {vi.name: vi for vi in data_inputs(model.graph)}
    first = layer_inputs[0].name
    declared = dims(inputs[first])
    if declared is not None and len(declared) != len(input_shape):
        raise IncompatibleInput(f"layer input 0 has rank {len(declared)}; got input_shape {list(input_shape)}")
    _set_dims(inputs[first], list(input_shape))
    try:
        shapes = [input_shape, *[tuple(dims(vi) or ()) for vi in layer_inputs[1:]]]
        for spec in variables(list(shapes)):
            _set_dims(inputs[spec.name], list(spec.shape))
    except IncompatibleInput:
        pass  # variables whose dims are not known yet keep their declared shapes
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as exc:
        raise IncompatibleInput(f"input_shape {list(input_shape)} does not fit the layer's graph: {exc}") from None
    found = {vi.name: vi for vi in inferred.graph.output}[output_name]
    out = dims(found)
    if out is None:
        raise IncompatibleInput("the layer's graph does not determine its output's rank", code="unknown_shape")
    return tuple(out)
