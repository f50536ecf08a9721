"""BatchNormalization (layer-api.md §2.2, §5, §7).

Training normalises with the biased batch statistics and reports them for the moving-average
updates; inference uses the moving statistics. TF's fused path (rank 4/5, one axis that is 1
or the last, 16/32-bit float) updates moving_variance with the unbiased variance and clamps
epsilon to 1.001e-5. 16-bit inputs have float32 variables and are computed in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature, VariableSpec
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.onnx_graph import GraphBuilder, onnx_dtype
from layerserve.server.layers.params import Param, boolean, constraint, initializer, nonneg_float, regularizer

__all__ = ["BatchNormalization"]

_FUSED_DTYPES = ("float16", "bfloat16", "float32")
_FUSED_MIN_EPSILON = 1.001e-5  # tf.nn.fused_batch_norm's floor (a cuDNN requirement)
_UNSUPPORTED = {"renorm": False, "virtual_batch_size": None, "adjustment": None}
_CONFIG_KEYS = ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
                "beta_constraint", "gamma_constraint")


def _axis(value: Any, name: str) -> int | list[int]:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    if is_int(value):
        return int(value)
    if isinstance(value, (list, tuple)) and all(is_int(v) for v in value):
        return [int(v) for v in value]
    raise InvalidArgument(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {value!r}",
                          code="invalid_argument", exception="TypeError")


def _anything(value: Any, name: str) -> Any:
    return value


def _optional_bool(value: Any, name: str) -> bool | None:
    return None if value is None else boolean(value, name)


class BatchNormalization(LayerKind):
    class_name = "BatchNormalization"
    dtype_policy = "cast"
    takes_training = True
    params = (
        Param("axis", -1, _axis),
        Param("momentum", 0.99, nonneg_float),
        Param("epsilon", 1e-3, nonneg_float),
        Param("center", default=True, parse=boolean),
        Param("scale", default=True, parse=boolean),
        Param("beta_initializer", "zeros", initializer),
        Param("gamma_initializer", "ones", initializer),
        Param("moving_mean_initializer", "zeros", initializer),
        Param("moving_variance_initializer", "ones", initializer),
        Param("beta_regularizer", None, regularizer),
        Param("gamma_regularizer", None, regularizer),
        Param("beta_constraint", None, constraint),
        Param("gamma_constraint", None, constraint),
        Param("renorm", default=False, parse=boolean),
        Param("renorm_clipping", None, _anything),  # ignored without renorm, as in TF
        Param("renorm_momentum", 0.99, nonneg_float),
        Param("fused", None, _optional_bool),
        Param("virtual_batch_size", None, _anything),
        Param("adjustment", None, _anything),
    )

    def validate(self) -> None:
        for key, default in _UNSUPPORTED.items():
            if self.config[key] != default:
                raise InvalidArgument(f"Argument `{key}` of BatchNormalization is not supported by layerserve "
                                      f"(leave it at {default})", code="unsupported_argument", argument=key)

    # ---- axes and shapes ---------------------------------------------------------------
    def axes(self, rank: int) -> list[int]:
        """The axis argument as non-negative ints, with TF's checks."""
        given = self.config["axis"]
        axes = [a + rank if a < 0 else a for a in ([given] if isinstance(given, int) else given)]
        if any(not 0 <= a < rank for a in axes):  # TF quotes the axes with negatives resolved
            raise IncompatibleInput(f"Invalid value for `axis` argument. Expected 0 <= axis < inputs.rank (with "
                                    f"inputs.rank={rank}). Received: axis={tuple(axes)}", code="invalid_axis")
        if len(set(axes)) != len(axes):
            raise IncompatibleInput(f"Duplicate axis: {tuple(axes)}", code="invalid_axis")
        return axes

    def param_shape(self, shape: tuple[int | None, ...]) -> tuple[int, ...]:
        axes = self.axes(len(shape))
        if len(axes) == 1:
            return (int(shape[axes[0]]),)  # type: ignore[arg-type]
        return tuple(int(d) if i in axes else 1 for i, d in enumerate(shape))  # type: ignore[arg-type]

    def fused(self, rank: int, dtype: str) -> bool:
        """TF v1 takes the fused kernel only when it can; otherwise it quietly does not."""
        axes = self.axes(rank)
        return (self.config["fused"] is not False and rank in (4, 5) and axes in ([1], [rank - 1])
                and dtype in _FUSED_DTYPES)

    def check_build_shape(self, shape: tuple[int | None, ...]) -> None:
        if not shape:
            raise IncompatibleInput(f"Input has undefined rank. Received: input_shape={shape}")
        axes = self.axes(len(shape))
        if any(shape[a] is None for a in axes):
            raise IncompatibleInput(f"Input has undefined `axis` dimension. Received input with shape "
                                    f"{tuple(shape)} and axis={tuple(axes)}")

    def recorded_build_shape(self, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return shape if 0 in self.axes(len(shape)) else (None, *shape[1:])

    def input_spec(self, build_shape: tuple[int | None, ...] | None) -> InputSpec | None:
        if build_shape is None:
            return None
        axes = {a: build_shape[a] for a in self.axes(len(build_shape))}
        return InputSpec(ndim=len(build_shape), axes={a: d for a, d in axes.items() if d is not None})

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def variable_dtype(self, dtype: str) -> str:
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    def variable_specs(self, input_shape: tuple[int | None, ...], dtype: str) -> list[VariableSpec]:
        shape = self.param_shape(input_shape)
        specs = []
        if self.config["scale"]:
            specs.append(VariableSpec("gamma", shape, dtype, trainable=True,
                                      initializer=self.initializer("gamma_initializer"),
                                      regularizer=self.regularizer("gamma_regularizer")))
        if self.config["center"]:
            specs.append(VariableSpec("beta", shape, dtype, trainable=True,
                                      initializer=self.initializer("beta_initializer"),
                                      regularizer=self.regularizer("beta_regularizer")))
        specs.append(VariableSpec("moving_mean", shape, dtype, trainable=False,
                                  initializer=self.initializer("moving_mean_initializer")))
        specs.append(VariableSpec("moving_variance", shape, dtype, trainable=False,
                                  initializer=self.initializer("moving_variance_initializer")))
        return specs

    # ---- graph -------------------------------------------------------------------------
    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        rank, axes = len(sig.shape), self.axes(len(sig.shape))
        params = {v.name: v for v in sig.variables}
        compute = params["moving_mean"].dtype  # float32 for 16-bit inputs
        broadcast = self._broadcast_shape(sig, axes, params["moving_mean"].shape)
        for v in sig.variables:
            b.add_input(v.name, v.dtype, list(v.shape))
        bshape = b.ints(broadcast)
        p = {name: b.op("Reshape", [name, bshape]) for name in params}
        xc = x if sig.dtype == compute else b.op("Cast", [x], to=onnx_dtype(compute))
        reduce = b.ints([i for i in range(rank) if i not in axes])
        extras: dict[str, tuple[str, str]] = {}
        if sig.training:
            # noop_with_empty_axes: when every axis is a BN axis, each element is its own batch
            mean = b.op("ReduceMean", [xc, reduce], keepdims=1, noop_with_empty_axes=1)
            centered = b.op("Sub", [xc, mean])
            var = b.op("ReduceMean", [b.op("Mul", [centered, centered]), reduce], keepdims=1, noop_with_empty_axes=1)
            pshape = b.ints(list(params["moving_mean"].shape))
            extras = {"batch_mean": (b.op("Reshape", [mean, pshape]), compute),
                      "batch_variance": (b.op("Reshape", [var, pshape]), compute)}
        else:
            centered, var = b.op("Sub", [xc, p["moving_mean"]]), p["moving_variance"]
        eps = self.config["epsilon"]
        if self.fused(rank, sig.dtype):
            eps = max(eps, _FUSED_MIN_EPSILON)
        inv = b.op("Div", [b.const(1.0, compute, "one"), b.op("Sqrt", [b.op("Add", [var, b.const(eps, compute)])])])
        if "gamma" in p:
            inv = b.op("Mul", [inv, p["gamma"]])
        y = b.op("Mul", [centered, inv])
        if "beta" in p:
            y = b.op("Add", [y, p["beta"]])
        if compute != sig.dtype:
            y = b.op("Cast", [y], to=onnx_dtype(sig.dtype))
        return GraphOutputs(y, extras=extras)

    @staticmethod
    def _broadcast_shape(sig: Signature, axes: list[int], param: tuple[int, ...]) -> list[int]:
        """The parameters' shape for broadcasting against the input (1 in the reduced dims)."""
        wanted = [sig.shape[a] for a in axes]
        have = list(param) if len(axes) == 1 else [param[a] for a in axes]
        if wanted != have:  # the input spec rejects such inputs first
            raise IncompatibleInput(f"expected axes {axes} of input shape to have values {have}, but received "
                                    f"input with shape {tuple(sig.shape)}")
        return [sig.shape[i] if i in axes else 1 for i in range(len(sig.shape))]

    def update_stats(self, outputs: dict[str, np.ndarray], *, training: bool) -> list[tuple[str, np.ndarray, float]]:
        if not training:
            return []
        y, mean, var = outputs["y"], outputs["batch_mean"], outputs["batch_variance"]
        if self.fused(y.ndim, y.dtype.name):  # the fused kernel reports the unbiased variance
            n = y.size // max(mean.size, 1)
            var = (var * (np.float32(n) / np.float32(max(n - 1, 1)))).astype(var.dtype)
        decay = 1.0 - self.config["momentum"]
        return [("moving_mean", mean, decay), ("moving_variance", var, decay)]

    # ---- config ------------------------------------------------------------------------
    def get_config(self, dtype: str | None, build_shape: tuple[int | None, ...] | None) -> dict[str, Any]:
        config = {k: self.config_value(k, self.config[k]) for k in _CONFIG_KEYS}
        if build_shape is not None:
            config["axis"] = self.axes(len(build_shape))
        return config
