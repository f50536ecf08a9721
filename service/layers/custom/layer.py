"""Custom layers (``class: "Layer"``): TF's base Layer, its computation given as an ONNX graph.

The uploaded graph's inputs are the layer's inputs, then its variables (by name, in
declaration order), then an optional bool ``training`` scalar; its outputs are the layer's
outputs, then outputs declared as losses (conditional: tied to the apply's inputs, like an
activity regularizer; unconditional: computed from the variables only, re-evaluated when
read, like a weight regularizer) or as updates (a new value, or a moving-average target, for
a non-trainable variable, taken in training mode only). See ``custom.spec`` for the JSON.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import onnx

from layerserve.protocol import tensor_from_json
from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import LayerKind, Shape, Signature, VariableSpec
from layerserve.server.layers.custom.budget import ModelBudget
from layerserve.server.layers.custom.framing import Frame, data_inputs, extract_outputs, frame_model
from layerserve.server.layers.custom.shapes import output_shape
from layerserve.server.layers.custom.spec import (
    LossDecl,
    UpdateDecl,
    VariableDecl,
    bad,
    input_ref_of,
    normalize_config,
    parse_input_spec,
    parse_losses,
    parse_updates,
    parse_variables,
)
from layerserve.server.layers.custom.validation import check_graph, decode_model, dims, elem_dtype, safe_model
from layerserve.server.layers.kit.initializers import Initializer, parse_initializer
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.names import to_snake_case
from layerserve.server.layers.kit.regularizers import parse_regularizer

__all__ = ["CustomLayer", "ExplicitValue"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class ExplicitValue(Initializer):
    """An initial value given as data rather than by an initializer's name."""

    tensor: dict[str, Any] = field(default_factory=dict)

    def __call__(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        array = tensor_from_json(self.tensor)
        if tuple(array.shape) != tuple(shape):
            raise IncompatibleInput(f"the explicit value of shape {tuple(array.shape)} does not fit a variable of "
                                    f"shape {tuple(shape)}", code="incompatible_weights")
        return array.astype(dtype)


class CustomLayer(LayerKind):
    class_name = "Layer"
    dtype_policy = "cast"
    takes_training = True
    user_defined = True
    blob_fields = ("model",)
    # Set from the server's settings at start-up (``--max-model-bytes`` and the model budget).
    max_model_bytes: ClassVar[int] = 16 * MiB
    max_model_nodes: ClassVar[int] = 10_000
    max_model_edges: ClassVar[int] = 100_000
    max_model_depth: ClassVar[int] = 16
    max_model_inference_s: ClassVar[float] = 0.5
    max_tensor_elements: ClassVar[int] = 16 * MiB

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> LayerKind:
        """Validate everything at creation: nothing is created from a config that fails."""
        config = normalize_config(kwargs)
        raw = decode_model(config["model"], cls.max_model_bytes)
        budget = ModelBudget(cls.max_model_nodes, cls.max_model_depth, cls.max_model_inference_s,
                             max_edges=cls.max_model_edges)
        model = safe_model(raw, budget, cls.max_tensor_elements)
        kind = cls(config)
        spec = kind.input_specs
        check_graph(model, kind.variables, kind.losses, kind.updates, config["training_input"],
                    len(spec) if isinstance(spec, list) else None)
        kind.__dict__["model"] = model  # already decoded and inferred
        return kind

    # ---- the parsed config (cached: kinds are immutable) -----------------------------
    @cached_property
    def model(self) -> onnx.ModelProto:
        return onnx.shape_inference.infer_shapes(onnx.load_from_string(base64.b64decode(self.config["model"])))

    @cached_property
    def variables(self) -> list[VariableDecl]:
        return parse_variables(self.config["variables"])

    @cached_property
    def losses(self) -> list[LossDecl]:
        return parse_losses(self.config["losses"])

    @cached_property
    def updates(self) -> list[UpdateDecl]:
        return parse_updates(self.config["updates"])

    @cached_property
    def input_specs(self) -> InputSpec | list[InputSpec] | None:
        return parse_input_spec(self.config["input_spec"])

    @cached_property
    def data_inputs(self) -> list[onnx.ValueInfoProto]:
        n_rest = len(self.variables) + (self.config["training_input"] is not None)
        inputs = data_inputs(self.model.graph)
        return inputs[:len(inputs) - n_rest]

    @cached_property
    def output_names(self) -> list[str]:
        extras = {d.output for d in self.losses} | {d.output for d in self.updates}
        return [vi.name for vi in self.model.graph.output if vi.name not in extras]

    @property
    def dtype(self) -> str:
        dtype = elem_dtype(self.data_inputs[0])
        assert dtype is not None
        return dtype

    # ---- LayerKind hooks -------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self.data_inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)

    def base_name(self) -> str:
        return to_snake_case(self.config["class_name"] or self.class_name)

    def check_layer_dtype(self, dtype: str | None) -> None:
        if dtype is not None and dtype != self.dtype:
            raise bad("dtype", f"is {dtype} but the graph's inputs are {self.dtype}; a custom layer computes in "
                               "its graph's dtype")

    def build_dtype(self, dtype: str) -> str:
        return self.dtype

    def input_spec(self, build_shape: Shape | None) -> InputSpec | list[InputSpec] | None:
        return self.input_specs

    @property
    def batch_separable(self) -> bool:  # type: ignore[override]
        """Declared by the user (default False): an uploaded graph may mix a batch's rows."""
        return bool(self.config["batch_separable"])

    def build_variables(self, shapes: list[Shape], dtype: str) -> list[VariableSpec]:
        return [VariableSpec(d.name, self._resolve(d, shapes), d.dtype, trainable=d.trainable,
                             initializer=self._initializer(d), regularizer=parse_regularizer(d.regularizer, d.name))
                for d in self.variables]

    def _resolve(self, decl: VariableDecl, shapes: list[Shape]) -> tuple[int, ...]:
        out = []
        for entry in decl.shape:
            ref = input_ref_of(entry)
            if ref is None:
                out.append(int(entry))
                continue
            index, axis = ref
            shape = shapes[index]
            if not -len(shape) <= axis < len(shape) or shape[axis] is None:
                raise IncompatibleInput(f"variable {decl.name!r} takes a dim from input {index} axis {axis}, which "
                                        f"is not defined for an input of shape {tuple(shape)}")
            out.append(int(shape[axis]))  # type: ignore[arg-type]
        return tuple(out)

    @staticmethod
    def _initializer(decl: VariableDecl) -> Initializer | None:
        if decl.value is not None:
            return ExplicitValue("Value", {}, decl.value)
        return parse_initializer(decl.initializer, decl.name)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return output_shape(self.model, self.data_inputs, self.output_names[0],
                            lambda shapes: self.build_variables(shapes, self.dtype), input_shape)

    def get_config(self, dtype: str | None, build_shape: Shape | None) -> dict[str, Any]:
        """TF's base Layer config (name, trainable, dtype come from the layer): the model stays out."""
        return {}

    # ---- execution -------------------------------------------------------------------
    def compile_model(self, sig: Signature) -> tuple[onnx.ModelProto, list[str]]:
        frame = Frame(
            inputs=[("x" if k == 0 else f"x{k}", vi.name, shape)
                    for k, (vi, shape) in enumerate(zip(self.data_inputs, self._input_shapes(sig), strict=True))],
            variables=[(v.name, list(v.shape)) for v in sig.variables],
            outputs=[("y" if k == 0 else f"y{k}", name) for k, name in enumerate(self.output_names)],
            training=None if self.config["training_input"] is None else (self.config["training_input"], sig.training))
        frame.outputs += [(f"loss{i}", d.output) for i, d in enumerate(self.losses) if d.conditional]
        if sig.training:
            frame.outputs += [(f"update{i}", d.output) for i, d in enumerate(self.updates)]
        model = frame_model(self.model, frame)
        return model, [name for name, _ in frame.outputs]

    def _input_shapes(self, sig: Signature) -> list[Shape]:
        """Every input's shape: the signature's, else (an export) the graph's declared one."""
        shapes: list[Shape] = [sig.shape, *sig.more_shapes]
        for vi in self.data_inputs[len(shapes):]:
            shapes.append(tuple(dims(vi) or ()))
        return shapes

    def conditional_losses(self, outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [_scalar(outputs[f"loss{i}"], d.output) for i, d in enumerate(self.losses) if d.conditional]

    def update_stats(self, outputs: dict[str, np.ndarray], *, training: bool) -> list[tuple[str, np.ndarray, float | None]]:
        if not training:
            return []
        return [(d.variable, outputs[f"update{i}"], None if d.momentum is None else 1.0 - d.momentum)
                for i, d in enumerate(self.updates)]

    def weight_loss_outputs(self) -> list[str]:
        return [d.output for d in self.losses if not d.conditional]

    def weight_loss_model(self) -> tuple[onnx.ModelProto, list[str]] | None:
        """The sub-model computing the unconditional losses from the variables alone."""
        names = self.weight_loss_outputs()
        if not names:
            return None
        return extract_outputs(self.model, names, [v.name for v in self.variables]), names

    def models_to_check(self) -> list[bytes]:
        models = [self.model.SerializeToString()]
        extracted = self.weight_loss_model()
        if extracted is not None:
            models.append(extracted[0].SerializeToString())
        return models

    def input_metadata(self) -> list[dict[str, Any]]:
        """Every input's graph name, dtype and shape (-1 where dynamic), e.g. for OIP v2 metadata."""
        return [{"name": vi.name, "datatype": elem_dtype(vi),
                 "shape": [-1 if d is None else d for d in (dims(vi) or [])]} for vi in self.data_inputs]


def _scalar(value: np.ndarray, name: str) -> np.ndarray:
    if value.size != 1:
        raise InvalidArgument(f"loss output {name!r} produced shape {list(value.shape)}; losses are scalars",
                              code="invalid_loss")
    return value.reshape(())
