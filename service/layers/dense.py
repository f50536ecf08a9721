"""Dense: ``activation(x @ kernel + bias)`` on the last axis of an input of rank >= 2."""

from __future__ import annotations

from layerserve.server.errors import InvalidArgument
from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature, VariableSpec
from layerserve.server.layers.kit.activations import apply_activation
from layerserve.server.layers.kit.initializers import Initializer
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import (
    Param,
    kernel_bias_params,
    units_int,
)

__all__ = ["Dense"]


class Dense(LayerKind):
    class_name = "Dense"
    dtype_policy = "cast"
    params = (
        Param("units", parse=units_int),
        *kernel_bias_params(),
    )

    def input_spec(self, build_shape: tuple[int | None, ...] | None) -> InputSpec:
        if build_shape is None:
            return InputSpec(min_ndim=2)
        return InputSpec(min_ndim=2, axes={-1: int(build_shape[-1])})  # type: ignore[arg-type]

    def check_build_shape(self, shape: tuple[int | None, ...]) -> None:
        if shape[-1] is None:
            raise InvalidArgument("The last dimension of the inputs to a Dense layer should be defined. Found None.",
                                  code="incompatible_input")

    def variable_specs(self, input_shape: tuple[int | None, ...], dtype: str) -> list[VariableSpec]:
        units, last = self.config["units"], int(input_shape[-1])  # type: ignore[arg-type]
        glorot = Initializer("GlorotUniform", {"seed": None})
        specs = [VariableSpec("kernel", (last, units), dtype, trainable=True,
                              initializer=self.initializer("kernel_initializer") or glorot,
                              regularizer=self.regularizer("kernel_regularizer"))]
        if self.config["use_bias"]:
            specs.append(VariableSpec("bias", (units,), dtype, trainable=True,
                                      initializer=self.initializer("bias_initializer"),
                                      regularizer=self.regularizer("bias_regularizer")))
        return specs

    def work_per_output(self, input_shape: tuple[int, ...]) -> int:
        return input_shape[-1]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        shown = str(tuple(input_shape))  # as TF prints a TensorShape
        if len(input_shape) < 2:
            raise InvalidArgument(f"Shape {shown} must have rank at least 2", code="incompatible_input")
        if input_shape[-1] is None:
            raise InvalidArgument("The last dimension of the input shape of a Dense layer should be defined. Found "
                                  f"None. Received: input_shape={shown}", code="incompatible_input")
        return (*input_shape[:-1], self.config["units"])

    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        var_dtype = sig.dtype
        b.add_input("kernel", var_dtype, list(sig.variables[0].shape))
        y = b.op("MatMul", [x, "kernel"])
        if self.config["use_bias"]:
            b.add_input("bias", var_dtype, [self.config["units"]])
            y = b.op("Add", [y, "bias"])
        return GraphOutputs(apply_activation(b, y, self.config["activation"], sig.dtype))
