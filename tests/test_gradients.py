"""Reverse-mode gradients of ONNX graphs (layerserve.server.core.gradients): every rule, op by
op, against central finite differences, both computed by ONNX Runtime: tight in float64 where
ONNX Runtime has the op in float64, float32 everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from layerserve.server.core.gradients import UnsupportedGradient, append_gradients
from tests.gradient_check import Case, check, graph_of

DTYPES = ("float64", "float32")
# ONNX Runtime's CPU provider has these only in float16/float32 (machines.md).
NO_FLOAT64 = {"Elu", "Selu", "Softplus", "HardSigmoid", "Erf", "Conv", "ConvTranspose", "AveragePool",
              "GlobalAveragePool", "GlobalMaxPool", "Softsign", "Mean", "Tan", "Atan", "Atanh", "Asin", "Acos",
              "Asinh", "Acosh", "Sinh", "Cosh"}


def rnd(shape: tuple[int, ...], dtype: str, seed: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def away(shape: tuple[int, ...], dtype: str, seed: int, low: float = 0.3) -> np.ndarray:
    """Values at least ``low`` away from zero (kinks of relu, abs ... stay out of reach)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(low, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def distinct(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Values 0.1 apart in random order: a finite-difference step never changes which is largest."""
    count = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(count) * 0.1 - count * 0.05).reshape(shape).astype(dtype)


def op_case(op_type: str, inputs: dict[str, np.ndarray], *, consts: dict[str, np.ndarray] | None = None,
            outputs: int = 1, ys: list[str] | None = None, xs: list[str] | None = None, order: list[str] | None = None,
            **attrs: Any) -> Case:
    names = order or [*inputs, *(consts or {})]
    outs = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    return Case(graph_of([node], inputs, ys or outs[:1], consts), dict(inputs), xs or list(inputs), ys or outs[:1])


def i64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


Builder = Callable[[str], Case]


def _unary(op: str, make: Callable[[tuple[int, ...], str, int], np.ndarray] = rnd, **attrs: Any) -> Builder:
    return lambda d: op_case(op, {"x": make((3, 4), d, 1)}, **attrs)


def _positive(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    return rnd(shape, dtype, seed, 0.5, 2.0)


OPS: dict[str, Builder] = {
    "Add": lambda d: op_case("Add", {"a": rnd((2, 3, 4), d, 1), "b": rnd((3, 1), d, 2)}),
    "Sub": lambda d: op_case("Sub", {"a": rnd((3, 1), d, 1), "b": rnd((2, 3, 4), d, 2)}),
    "Mul": lambda d: op_case("Mul", {"a": rnd((2, 3, 4), d, 1), "b": rnd((4,), d, 2)}),
    "Div": lambda d: op_case("Div", {"a": rnd((2, 3, 4), d, 1), "b": away((3, 1), d, 2, 0.5)}),
    "Pow": lambda d: op_case("Pow", {"a": _positive((2, 3), d, 1), "b": rnd((3,), d, 2)}),
    "Pow_int_exponent": lambda d: op_case("Pow", {"a": rnd((2, 3), d, 1)}, consts={"e": i64(3)}),
    "Mod": lambda d: op_case("Mod", {"a": rnd((2, 3), d, 1, -3.0, 3.0), "b": away((3,), d, 2, 0.7)}, fmod=1),
    "Tan": lambda d: op_case("Tan", {"x": rnd((3, 4), d, 1, -1.0, 1.0)}),
    "Atan": _unary("Atan"), "Sinh": _unary("Sinh"), "Cosh": _unary("Cosh"), "Asinh": _unary("Asinh"),
    "Asin": lambda d: op_case("Asin", {"x": rnd((3, 4), d, 1, -0.8, 0.8)}),
    "Acos": lambda d: op_case("Acos", {"x": rnd((3, 4), d, 1, -0.8, 0.8)}),
    "Atanh": lambda d: op_case("Atanh", {"x": rnd((3, 4), d, 1, -0.8, 0.8)}),
    "Acosh": lambda d: op_case("Acosh", {"x": rnd((3, 4), d, 1, 1.2, 3.0)}),
    "Trilu": lambda d: op_case("Trilu", {"x": rnd((2, 4, 4), d, 1)}, consts={"k": i64(1)}, upper=0),
    "DepthToSpace": lambda d: op_case("DepthToSpace", {"x": rnd((1, 8, 2, 3), d, 1)}, blocksize=2),
    "SpaceToDepth": lambda d: op_case("SpaceToDepth", {"x": rnd((1, 2, 4, 6), d, 1)}, blocksize=2),
    "TopK": lambda d: op_case("TopK", {"x": distinct((3, 5), d, 1)}, consts={"k": i64([2])}, outputs=2, axis=1),
    "LayerNormalization": lambda d: op_case("LayerNormalization", {
        "x": rnd((2, 3, 4), d, 1), "s": rnd((3, 4), d, 2), "b": rnd((4,), d, 3)}, axis=1, epsilon=1e-3),
    "Neg": _unary("Neg"), "Abs": _unary("Abs", away), "Sqrt": _unary("Sqrt", _positive),
    "Exp": _unary("Exp"), "Log": _unary("Log", _positive), "Reciprocal": _unary("Reciprocal", away),
    "Sin": _unary("Sin"), "Cos": _unary("Cos"), "Relu": _unary("Relu", away),
    "LeakyRelu": _unary("LeakyRelu", away, alpha=0.2), "Elu": _unary("Elu", away, alpha=0.7),
    "Selu": _unary("Selu", away), "Sigmoid": _unary("Sigmoid"), "Tanh": _unary("Tanh"),
    "Softplus": _unary("Softplus"), "Softsign": _unary("Softsign", away),
    "HardSigmoid": lambda d: op_case("HardSigmoid", {"x": rnd((3, 4), d, 1, -2.2, 2.2)}, alpha=0.2, beta=0.5),
    "Erf": _unary("Erf"),
    "PRelu": lambda d: op_case("PRelu", {"x": away((2, 3, 4), d, 1), "slope": rnd((3, 1), d, 2)}),
    "Identity": _unary("Identity"),
    "Dropout_inference": _unary("Dropout"),
    "Cast": lambda d: op_case("Cast", {"x": rnd((3, 4), d, 1)},
                              to=TensorProto.FLOAT if d == "float64" else TensorProto.DOUBLE),
    "Max": lambda d: op_case("Max", {"a": rnd((2, 3, 4), d, 1), "b": rnd((3, 4), d, 2)}),
    "Min": lambda d: op_case("Min", {"a": rnd((3, 1), d, 1), "b": rnd((2, 3, 4), d, 2), "c": rnd((4,), d, 3)}),
    "Where": lambda d: op_case("Where", {"a": rnd((2, 3, 4), d, 1), "b": rnd((4,), d, 2)},
                               consts={"c": np.random.default_rng(3).random((3, 4)) > 0.5}, order=["c", "a", "b"]),
    "Clip": lambda d: op_case("Clip", {"x": rnd((3, 4), d, 1), "lo": np.asarray(-0.71, d), "hi": np.asarray(0.93, d)}),
    "Clip_one_bound": lambda d: op_case("Clip", {"x": rnd((3, 4), d, 1)}, consts={"hi": np.asarray(0.5, d)},
                                        order=["x", "", "hi"]),
    "Sum": lambda d: op_case("Sum", {"a": rnd((2, 3), d, 1), "b": rnd((3,), d, 2), "c": rnd((2, 1), d, 3)}),
    "Mean": lambda d: op_case("Mean", {"a": rnd((2, 3), d, 1), "b": rnd((3,), d, 2)}),
    "Softmax": lambda d: op_case("Softmax", {"x": rnd((2, 3, 4), d, 1)}, axis=1),
    "LogSoftmax": lambda d: op_case("LogSoftmax", {"x": rnd((2, 3, 4), d, 1)}),
    "ReduceSum": lambda d: op_case("ReduceSum", {"x": rnd((2, 3, 4), d, 1)}, consts={"axes": i64([1])}, keepdims=0),
    "ReduceSum_all": lambda d: op_case("ReduceSum", {"x": rnd((2, 3, 4), d, 1)}, keepdims=0),
    "ReduceSum_noop": lambda d: op_case("ReduceSum", {"x": rnd((2, 3), d, 1)}, noop_with_empty_axes=1),
    "ReduceMean": lambda d: op_case("ReduceMean", {"x": rnd((2, 3, 4), d, 1)}, consts={"axes": i64([0, -1])}),
    "ReduceMax": lambda d: op_case("ReduceMax", {"x": distinct((2, 3, 4), d, 1)}, consts={"axes": i64([1])}, keepdims=0),
    "ReduceMin": lambda d: op_case("ReduceMin", {"x": distinct((2, 3, 4), d, 1)}, consts={"axes": i64([2])}),
    "ReduceProd": lambda d: op_case("ReduceProd", {"x": rnd((2, 3, 4), d, 1)}, consts={"axes": i64([1])}),
    "ReduceProd_zeros": lambda d: op_case("ReduceProd", {"x": rnd((3, 4), d, 1) * np.asarray(
        [[1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]], d)}, consts={"axes": i64([1])}),
    "ReduceSumSquare": lambda d: op_case("ReduceSumSquare", {"x": rnd((2, 3, 4), d, 1)}, consts={"axes": i64([1])}),
    "ReduceL1": lambda d: op_case("ReduceL1", {"x": away((2, 3), d, 1)}, consts={"axes": i64([1])}),
    "ReduceL2": lambda d: op_case("ReduceL2", {"x": rnd((2, 3), d, 1)}, consts={"axes": i64([0])}),
    "ReduceLogSumExp": lambda d: op_case("ReduceLogSumExp", {"x": rnd((2, 3), d, 1)}, consts={"axes": i64([1])}),
    "ReduceLogSum": lambda d: op_case("ReduceLogSum", {"x": _positive((2, 3), d, 1)}, keepdims=0),
    "MatMul": lambda d: op_case("MatMul", {"a": rnd((2, 3, 4), d, 1), "b": rnd((4, 5), d, 2)}),
    "MatMul_vector_left": lambda d: op_case("MatMul", {"a": rnd((4,), d, 1), "b": rnd((2, 4, 5), d, 2)}),
    "MatMul_vector_right": lambda d: op_case("MatMul", {"a": rnd((3, 4), d, 1), "b": rnd((4,), d, 2)}),
    "MatMul_batch_broadcast": lambda d: op_case("MatMul", {"a": rnd((2, 1, 3, 4), d, 1), "b": rnd((5, 4, 2), d, 2)}),
    "Gemm": lambda d: op_case("Gemm", {"a": rnd((3, 4), d, 1), "b": rnd((4, 5), d, 2), "c": rnd((5,), d, 3)},
                              alpha=0.7, beta=1.3),
    "Gemm_transposed": lambda d: op_case("Gemm", {"a": rnd((4, 3), d, 1), "b": rnd((5, 4), d, 2),
                                                  "c": rnd((3, 1), d, 3)}, transA=1, transB=1),
    "Gemm_transA": lambda d: op_case("Gemm", {"a": rnd((4, 3), d, 1), "b": rnd((4, 5), d, 2)}, transA=1),
    "Gemm_transB": lambda d: op_case("Gemm", {"a": rnd((3, 4), d, 1), "b": rnd((5, 4), d, 2)}, transB=1),
    "Einsum_patches": lambda d: op_case("Einsum", {"p": rnd((2, 5, 3, 4), d, 1), "k": rnd((3, 4, 2), d, 2)},
                                        equation="npkc,kcm->npcm"),
    "Einsum_implicit": lambda d: op_case("Einsum", {"a": rnd((3, 4), d, 1), "b": rnd((4, 2), d, 2)},
                                         equation="ij,jk"),
    "Einsum_summed_letter": lambda d: op_case("Einsum", {"a": rnd((3, 4), d, 1), "b": rnd((4,), d, 2)},
                                              equation="ij,k->i"),
    "Reshape": lambda d: op_case("Reshape", {"x": rnd((2, 3, 4), d, 1)}, consts={"s": i64([4, -1])}),
    "Flatten": lambda d: op_case("Flatten", {"x": rnd((2, 3, 4), d, 1)}, axis=2),
    "Squeeze": lambda d: op_case("Squeeze", {"x": rnd((2, 1, 4), d, 1)}, consts={"a": i64([1])}),
    "Unsqueeze": lambda d: op_case("Unsqueeze", {"x": rnd((2, 4), d, 1)}, consts={"a": i64([0, 3])}),
    "Transpose": lambda d: op_case("Transpose", {"x": rnd((2, 3, 4), d, 1)}, perm=[2, 0, 1]),
    "Transpose_default": lambda d: op_case("Transpose", {"x": rnd((2, 3, 4), d, 1)}),
    "Concat": lambda d: op_case("Concat", {"a": rnd((2, 3), d, 1), "b": rnd((2, 1), d, 2), "c": rnd((2, 2), d, 3)},
                                axis=-1),
    "Split": lambda d: op_case("Split", {"x": rnd((2, 6), d, 1)}, outputs=3, ys=["out0", "out2"], axis=1,
                               num_outputs=3),
    "Split_sizes": lambda d: op_case("Split", {"x": rnd((5, 2), d, 1)}, consts={"s": i64([1, 4])}, outputs=2,
                                     ys=["out1"]),
    "Slice": lambda d: op_case("Slice", {"x": rnd((4, 5), d, 1)}, consts={
        "s": i64([1, 0]), "e": i64([3, 5]), "a": i64([0, 1]), "st": i64([1, 2])}),
    "Slice_negative_step": lambda d: op_case("Slice", {"x": rnd((4, 5), d, 1)}, consts={
        "s": i64([-1]), "e": i64([-(2**62)]), "a": i64([1]), "st": i64([-2])}),
    "Slice_defaults": lambda d: op_case("Slice", {"x": rnd((4, 5), d, 1)}, consts={"s": i64([1]), "e": i64([2**62])}),
    "Gather": lambda d: op_case("Gather", {"x": rnd((3, 4, 2), d, 1)}, consts={"i": i64([[0, 3], [3, -1]])}, axis=1),
    "Gather_scalar": lambda d: op_case("Gather", {"x": rnd((3, 4), d, 1)}, consts={"i": i64(2)}),
    "Gather_heavy": lambda d: op_case("Gather", {"x": rnd((3, 5), d, 1)}, consts={"i": i64([4] * 40 + [0, 1])},
                                      axis=1),
    "Gather_dynamic": lambda d: op_case("Gather", {"x": rnd((3, 4, 2), d, 1), "i": i64([[0, 3, 3], [-1, 1, 0]])},
                                        xs=["x"], axis=1),
    "GatherElements": lambda d: op_case("GatherElements", {"x": rnd((3, 4), d, 1)},
                                        consts={"i": i64([[0, 0, 2, 1], [2, 2, 2, 0]])}, axis=0),
    "GatherND": lambda d: op_case("GatherND", {"x": rnd((3, 4), d, 1)}, consts={"i": i64([[0, 1], [2, 3], [0, 1]])}),
    "Expand": lambda d: op_case("Expand", {"x": rnd((3, 1), d, 1)}, consts={"s": i64([2, 3, 4])}),
    "Tile": lambda d: op_case("Tile", {"x": rnd((2, 3), d, 1)}, consts={"r": i64([2, 3])}),
    "Pad": lambda d: op_case("Pad", {"x": rnd((3, 4), d, 1)}, consts={"p": i64([1, -1, 0, 2])}),
    "Pad_axes": lambda d: op_case("Pad", {"x": rnd((2, 3, 4), d, 1)},
                                  consts={"p": i64([1, 2]), "v": np.asarray(0.5, d), "a": i64([2])}),
    "CumSum": lambda d: op_case("CumSum", {"x": rnd((3, 4), d, 1)}, consts={"a": i64(1)}),
    "CumSum_reverse_exclusive": lambda d: op_case("CumSum", {"x": rnd((3, 4), d, 1)}, consts={"a": i64(0)},
                                                  reverse=1, exclusive=1),
    "Conv": lambda d: op_case("Conv", {"x": rnd((2, 4, 7, 6), d, 1), "w": rnd((6, 2, 3, 2), d, 2),
                                       "b": rnd((6,), d, 3)}, strides=[2, 1], pads=[1, 0, 2, 1], group=2),
    "Conv_dilated": lambda d: op_case("Conv", {"x": rnd((1, 2, 9, 8), d, 1), "w": rnd((3, 2, 3, 3), d, 2)},
                                      dilations=[2, 3], pads=[2, 1, 1, 3]),
    "Conv_depthwise": lambda d: op_case("Conv", {"x": rnd((2, 3, 6, 5), d, 1), "w": rnd((6, 1, 3, 3), d, 2)},
                                        group=3, strides=[2, 2], auto_pad="SAME_UPPER"),
    "Conv_same_strided": lambda d: op_case("Conv", {"x": rnd((2, 3, 8, 9), d, 1), "w": rnd((4, 3, 3, 2), d, 2)},
                                                   strides=[2, 3], auto_pad="SAME_LOWER"),
    "Conv_1d": lambda d: op_case("Conv", {"x": rnd((2, 3, 9), d, 1), "w": rnd((4, 3, 4), d, 2)}, strides=[3]),
    "Conv_3d": lambda d: op_case("Conv", {"x": rnd((1, 2, 4, 5, 3), d, 1), "w": rnd((2, 2, 2, 3, 2), d, 2)},
                                 pads=[1, 0, 1, 0, 1, 0]),
    "ConvTranspose": lambda d: op_case("ConvTranspose", {"x": rnd((2, 4, 3, 4), d, 1), "w": rnd((4, 3, 3, 2), d, 2),
                                                         "b": rnd((6,), d, 3)},
                                       strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 2], group=2),
    "ConvTranspose_dilated": lambda d: op_case("ConvTranspose", {"x": rnd((1, 2, 3, 3), d, 1),
                                                                 "w": rnd((2, 3, 2, 3), d, 2)}, dilations=[2, 2]),
    "ConvTranspose_1d_small_kernel": lambda d: op_case("ConvTranspose", {"x": rnd((2, 2, 4), d, 1),
                                                                         "w": rnd((2, 2, 1), d, 2)}, strides=[3]),
    "MaxPool": lambda d: op_case("MaxPool", {"x": distinct((2, 3, 7, 6), d, 1)}, kernel_shape=[3, 3], strides=[2, 2],
                                 pads=[1, 1, 1, 0]),
    "MaxPool_1d_ceil": lambda d: op_case("MaxPool", {"x": distinct((2, 3, 8), d, 1)}, kernel_shape=[3], strides=[2],
                                         ceil_mode=1),
    "MaxPool_3d": lambda d: op_case("MaxPool", {"x": distinct((1, 2, 4, 4, 3), d, 1)}, kernel_shape=[2, 2, 2],
                                    strides=[2, 2, 1]),
    "MaxPool_tiled": lambda d: op_case("MaxPool", {"x": distinct((2, 3, 6, 4), d, 1)}, kernel_shape=[3, 2],
                                       strides=[3, 2]),
    "MaxPool_tiled_rest": lambda d: op_case("MaxPool", {"x": distinct((2, 2, 7, 5), d, 1)}, kernel_shape=[2, 2],
                                            strides=[2, 2]),
    "MaxPool_tiled_3d": lambda d: op_case("MaxPool", {"x": distinct((1, 2, 4, 2, 6), d, 1)}, kernel_shape=[2, 2, 3],
                                          strides=[2, 2, 3]),
    "AveragePool": lambda d: op_case("AveragePool", {"x": rnd((2, 3, 7, 6), d, 1)}, kernel_shape=[3, 2],
                                     strides=[2, 2], pads=[1, 0, 1, 1]),
    "AveragePool_count_pad": lambda d: op_case("AveragePool", {"x": rnd((2, 2, 5, 5), d, 1)}, kernel_shape=[3, 3],
                                               strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    "AveragePool_same_1d": lambda d: op_case("AveragePool", {"x": rnd((2, 2, 7), d, 1)}, kernel_shape=[4],
                                             strides=[3], auto_pad="SAME_UPPER"),
    "GlobalAveragePool": lambda d: op_case("GlobalAveragePool", {"x": rnd((2, 3, 4, 5), d, 1)}),
    "GlobalMaxPool": lambda d: op_case("GlobalMaxPool", {"x": distinct((2, 3, 4, 5), d, 1)}),
    "BatchNormalization": lambda d: op_case("BatchNormalization", {
        "x": rnd((3, 2, 4, 2), d, 1), "s": rnd((2,), d, 2), "b": rnd((2,), d, 3), "m": rnd((2,), d, 4),
        "v": _positive((2,), d, 5)}, epsilon=1e-3),
    "BatchNormalization_training": lambda d: op_case("BatchNormalization", {
        "x": rnd((3, 2, 4, 2), d, 1), "s": rnd((2,), d, 2), "b": rnd((2,), d, 3)},
        consts={"m": np.zeros(2, d), "v": np.ones(2, d)}, outputs=3, training_mode=1, epsilon=1e-3),
}


def _float64_ok(name: str) -> bool:
    return name.split("_")[0] not in NO_FLOAT64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradient_matches_finite_differences(name: str, dtype: str) -> None:
    if dtype == "float64" and not _float64_ok(name):
        pytest.skip(f"ONNX Runtime has no float64 {name.split('_')[0]} kernel")
    check(OPS[name](dtype))


# ---- the graphs of the built-in layer classes ------------------------------------------------
ACTIVATION_NAMES = ("linear", "relu", "relu6", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "elu",
                    "selu", "softplus", "softsign", "swish", "gelu", "exponential", "mish", "leaky_relu")
LAYERS: list[tuple[str, dict[str, Any], tuple[int, ...], bool]] = [
    *(("Dense", {"units": 3, "activation": a}, (4, 5), False) for a in ACTIVATION_NAMES),
    ("Dense", {"units": 2, "use_bias": False}, (2, 3, 4), False),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 9, 2), False),
    ("Conv1D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "data_format": "channels_first"},
     (2, 3, 7), False),
    ("Conv2D", {"filters": 3, "kernel_size": (3, 2), "strides": (2, 1), "padding": "same", "activation": "tanh"},
     (2, 7, 6, 2), False),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "data_format": "channels_first"},
     (1, 2, 8, 7), False),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "strides": (1, 2, 1), "padding": "same"}, (1, 3, 4, 3, 2), False),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 2), False),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": (1, 2), "strides": 3, "data_format": "channels_first"},
     (1, 2, 3, 2), False),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "padding": "valid"}, (1, 3, 3, 2),
     False),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": (2, 1, 1), "padding": "same"}, (1, 2, 3, 2, 2),
     False),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 3, "depth_multiplier": 2, "padding": "causal"}, (2, 7, 2),
     False),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "depth_multiplier": 2},
     (2, 5, 4, 3), False),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "data_format": "channels_first"},
     (1, 2, 7, 7), False),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 3), False),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 2), False),
    ("MaxPooling2D", {"pool_size": 2, "strides": 1, "data_format": "channels_first"}, (2, 2, 4, 5), False),
    ("MaxPooling3D", {"pool_size": 2, "strides": 2}, (1, 4, 4, 3, 2), False),
    ("AveragePooling1D", {"pool_size": 2, "strides": 2, "padding": "same"}, (2, 7, 3), False),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 2), False),
    ("AveragePooling2D", {"pool_size": (2, 3), "strides": 1, "data_format": "channels_first"}, (2, 2, 4, 5), False),
    ("AveragePooling3D", {"pool_size": 2, "strides": (1, 2, 2), "padding": "same"}, (1, 3, 4, 3, 2), False),
    ("BatchNormalization", {}, (4, 3, 3, 2), True),
    ("BatchNormalization", {}, (4, 3, 3, 2), False),
    ("BatchNormalization", {"axis": 1, "center": False}, (5, 3, 2), True),
    ("BatchNormalization", {"scale": False, "epsilon": 0.1}, (6, 3), True),
    ("Dropout", {"rate": 0.4}, (4, 5), True),
    ("Dropout", {"rate": 0.4, "noise_shape": [None, 1, 3]}, (3, 2, 3), True),
    ("Flatten", {}, (2, 3, 2, 2), False),
]
_FLOAT64_LAYERS = {"MaxPooling3D", "AveragePooling3D"}  # TF has no float64 3D pooling kernels


def layer_case(cls: str, kwargs: dict[str, Any], shape: tuple[int, ...], training: bool, dtype: str) -> Case:
    from layerserve.server.layers import KINDS
    from layerserve.server.layers.base import Signature
    from layerserve.server.runtime.compiler import compile_layer
    from tests.gradient_check import concrete

    kind = KINDS[cls].from_kwargs(kwargs)
    specs = kind.build_variables([(None, *shape[1:])], dtype)
    sig = Signature(dtype, shape, training, tuple(specs))
    model, outputs = compile_layer(kind, sig)
    graph = concrete(model.graph, shape[0])
    feeds: dict[str, np.ndarray] = {}
    for k, value in enumerate(graph.input):
        dims = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
        elem = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if value.name == "noise":
            feeds[value.name] = np.random.default_rng(7).random(dims).astype(elem)
        elif value.name == "moving_variance":
            feeds[value.name] = rnd(dims, str(elem), 10 + k, 0.5, 1.5)
        elif "Pooling" in cls and value.name == "x":
            feeds[value.name] = distinct(dims, str(elem), 10 + k)
        else:
            feeds[value.name] = rnd(dims, str(elem), 10 + k, -1.0, 1.0)
    xs = [name for name, v in feeds.items() if name != "noise" and v.dtype.kind == "f"]
    # in training mode the moving statistics take no part in the outputs
    unconnected = {"moving_mean", "moving_variance"} if cls == "BatchNormalization" and training else set()
    return Case(graph, feeds, xs, list(outputs), unconnected=unconnected)


def _layer_id(entry: tuple[str, dict[str, Any], tuple[int, ...], bool]) -> str:
    cls, kwargs, _, training = entry
    text = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{cls}({text}){'-training' if training else ''}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("entry", LAYERS, ids=_layer_id)
def test_layer_graph_gradient_matches_finite_differences(entry: tuple[str, dict[str, Any], tuple[int, ...], bool],
                                                         dtype: str) -> None:
    cls, kwargs, shape, training = entry
    if dtype == "float64" and cls in _FLOAT64_LAYERS:
        pytest.skip(f"{cls} has no float64 kernel in TensorFlow")
    check(layer_case(cls, kwargs, shape, training, dtype))


# ---- which xs get a gradient, and errors ------------------------------------------------------
def _chain(nodes: list[Any], inputs: dict[str, np.ndarray], ys: list[str],
           consts: dict[str, np.ndarray] | None = None) -> Any:
    return graph_of(nodes, inputs, ys, consts)


def test_unconnected_integer_and_non_differentiable_paths_give_none() -> None:
    x, z = rnd((2, 3), "float64", 1), rnd((2, 3), "float64", 2)
    nodes = [
        helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
        helper.make_node("Cast", ["xi"], ["xf"], to=TensorProto.DOUBLE),
        helper.make_node("ArgMax", ["z"], ["am"], axis=1),
        helper.make_node("Cast", ["am"], ["amf"], to=TensorProto.DOUBLE),
        helper.make_node("Add", ["xf", "amf"], ["y"]),
    ]
    graph = _chain(nodes, {"x": x, "z": z, "u": x}, ["y"])
    assert append_gradients(graph, ys=["y"], xs=["x", "z", "u"], grad_ys=[None], stop=set()) == [None, None, None]


def test_stop_blocks_only_the_paths_through_it() -> None:
    nodes = [helper.make_node("Identity", ["x"], ["held"]),
             helper.make_node("Mul", ["held", "x"], ["y"])]
    x = rnd((3,), "float64", 1)
    case = Case(_chain(nodes, {"x": x}, ["y"]), {"x": x}, ["x", "held"], ["y"], stop={"held"})
    graph = case.graph
    grads = append_gradients(graph, ys=["y"], xs=["x", "held"], grad_ys=[None], stop={"held"})
    got = _run(graph, {"x": x}, grads)
    np.testing.assert_allclose(got[0], x)  # d(held*x)/dx with held constant
    np.testing.assert_allclose(got[1], x)  # a stopped tensor itself still has a gradient
    only = _chain([helper.make_node("Identity", ["x"], ["held"]), helper.make_node("Exp", ["held"], ["y"])],
                  {"x": x}, ["y"])
    assert append_gradients(only, ys=["y"], xs=["x"], grad_ys=[None], stop={"held"}) == [None]


def _run(graph: Any, feeds: dict[str, np.ndarray], names: list[str | None]) -> list[np.ndarray]:
    from tests.gradient_check import session

    del graph.output[:]
    import onnx

    graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n is not None)
    return list(session(graph).run([n for n in names if n is not None], feeds))


def test_several_ys_sum_and_grad_ys_scale() -> None:
    """tf.gradients([y1, y2], x, grad_ys): the weighted sum's gradient; None means ones."""
    x = rnd((2, 3), "float64", 1)
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Exp", ["x"], ["ex"])]
    graph = _chain(nodes, {"x": x}, ["sq"], {"w": np.full((2, 3), 3.0)})
    grads = append_gradients(graph, ys=["sq", "ex", "x"], xs=["x"], grad_ys=[None, "w", None], stop=set())
    (got,) = _run(graph, {"x": x}, grads)
    np.testing.assert_allclose(got, 2 * x + 3 * np.exp(x) + 1)


def test_unsupported_op_on_the_path_is_a_lookup_error_naming_it() -> None:
    x = rnd((1, 1, 2, 2), "float32", 1)
    nodes = [helper.make_node("LRN", ["x"], ["y"], size=1, name="norm1")]
    with pytest.raises(UnsupportedGradient) as caught:
        append_gradients(_chain(nodes, {"x": x}, ["y"]), ys=["y"], xs=["x"], grad_ys=[None], stop=set())
    assert caught.value.status == 422 and caught.value.exception == "LookupError"
    assert "LRN" in caught.value.message and "norm1" in caught.value.message
    custom = [helper.make_node("Frob", ["x"], ["y"], domain="example.ops")]
    with pytest.raises(UnsupportedGradient, match=r"example\.ops::Frob"):
        append_gradients(_chain(custom, {"x": x}, ["y"]), ys=["y"], xs=["x"], grad_ys=[None], stop=set())


def test_unsupported_op_off_the_path_is_fine() -> None:
    x = rnd((1, 1, 2, 2), "float32", 1)
    nodes = [helper.make_node("LRN", ["x"], ["side"], size=1), helper.make_node("Exp", ["x"], ["y"])]
    graph = _chain(nodes, {"x": x}, ["y", "side"])
    grads = append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())
    np.testing.assert_allclose(_run(graph, {"x": x}, grads)[0], np.exp(x), rtol=1e-6)


def test_shape_computed_reshape_and_slice_bounds_fold_to_constants() -> None:
    """Recorded graphs compute shapes (Shape -> Gather -> Concat): with static shapes they fold."""
    x = rnd((2, 3, 4), "float64", 1)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "zero"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Slice", ["flat", "one", "target_end", "one"], ["y"]),
        helper.make_node("Mul", ["s_last", "three"], ["target_end_raw"]),
        helper.make_node("Identity", ["target_end_raw"], ["target_end"]),
        helper.make_node("Slice", ["s", "two", "three"], ["s_last"]),
    ]
    nodes = [*nodes[:5], nodes[8], nodes[6], nodes[7], nodes[5]]
    consts = {"zero": i64(0), "minus1": i64([-1]), "one": i64([1]), "two": i64([2]), "three": i64([3])}
    case = Case(_chain(nodes, {"x": x}, ["y"], consts), {"x": x}, ["x"], ["y"])
    check(case)


def test_a_rule_that_needs_a_constant_says_so() -> None:
    from layerserve.server.core.gradients import GradientError

    x = rnd((4, 5), "float64", 1)
    nodes = [helper.make_node("Slice", ["x", "starts", "ends"], ["y"])]
    graph = graph_of(nodes, {"x": x, "starts": i64([1]), "ends": i64([3])}, ["y"])
    graph.value_info.append(helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2, 5]))  # as a composer knows
    with pytest.raises(GradientError, match="starts"):
        append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())


def test_dynamic_shapes_are_refused() -> None:
    from layerserve.server.core.gradients import GradientError

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tile", ["r", "reps"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
                                    helper.make_tensor_value_info("reps", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(GradientError, match="static shape"):
        append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())


def test_forward_values_are_unchanged_and_names_do_not_clash() -> None:
    """Backward nodes only add tensors: the forward outputs keep their values, and a graph that
    already uses ``gradients/...`` names gets fresh ones."""
    x = distinct((1, 2, 4, 4), "float32", 1)
    nodes = [helper.make_node("MaxPool", ["x"], ["gradients/Mul_1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Mul", ["gradients/Mul_1", "gradients/Mul_1"], ["y"])]
    graph = _chain(nodes, {"x": x}, ["y"])
    grads = append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())
    names = [o for n in graph.node for o in n.output if o]
    assert len(names) == len(set(names))
    y, g = _run(graph, {"x": x}, ["y", grads[0]])
    pooled = x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_allclose(y, pooled * pooled)
    assert np.count_nonzero(g) == pooled.size


def test_max_pool_gives_a_tied_window_gradient_to_its_first_maximum() -> None:
    """TF's MaxPoolGrad: a window of equal cells (zeros after a ReLU) passes the gradient to its
    first cell in row-major order only; tiled and overlapping windows alike."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 2.0]]  # two maxima: the first (row-major) takes it
    for kernel, strides in (([2, 2], [2, 2]), ([2, 2], [1, 1]), ([3, 3], [3, 3])):
        nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=kernel, strides=strides)]
        graph = _chain(nodes, {"x": x}, ["y"])
        grads = append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())
        (g,) = _run(graph, {"x": x}, [grads[0]])
        want = np.zeros_like(x)
        for i in range(0, 4 - kernel[0] + 1, strides[0]):
            for j in range(0, 4 - kernel[1] + 1, strides[1]):
                window = x[0, 0, i:i + kernel[0], j:j + kernel[1]]
                di, dj = np.unravel_index(int(np.argmax(window)), window.shape)
                want[0, 0, i + di, j + dj] += 1.0
        np.testing.assert_array_equal(g, want)


def test_dropout_in_training_mode_uses_the_forward_mask() -> None:
    x = rnd((4, 6), "float32", 1)
    nodes = [helper.make_node("Dropout", ["x", "ratio", "train"], ["y"], seed=3)]
    graph = _chain(nodes, {"x": x}, ["y"], {"ratio": np.asarray(0.5, np.float32), "train": np.asarray(True)})  # noqa: FBT003 - a bool tensor
    grads = append_gradients(graph, ys=["y"], xs=["x"], grad_ys=[None], stop=set())
    y, g = _run(graph, {"x": x}, ["y", grads[0]])
    np.testing.assert_allclose(g, np.where(y != 0, 2.0, 0.0))


# ---- Gradients nodes of a composed program ----------------------------------------------------
def test_gradients_node_expands_in_place_for_later_nodes() -> None:
    """``Gradients(loss; w, x, u)`` where a later node applies the step: one run gives the new w."""
    from layerserve.server.core.gradients import expand_gradient_nodes

    x, w = rnd((4, 3), "float64", 1), rnd((3, 2), "float64", 2)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("Mul", ["y", "y"], ["sq"]),
        helper.make_node("ReduceSum", ["sq"], ["loss"], keepdims=0),
        helper.make_node("Gradients", ["loss", "w", "x", "u", ""], ["gw", "gx", "gu"], domain="ai.layerserve",
                         num_ys=1),
        helper.make_node("Mul", ["gw", "lr"], ["step"]),
        helper.make_node("Sub", ["w", "step"], ["new_w"]),
    ]
    graph = graph_of(nodes, {"x": x, "w": w, "u": w}, ["new_w", "gx", "gu"], {"lr": np.asarray(0.1)})
    assert expand_gradient_nodes(graph, stop=set()) == 1
    assert not any(n.domain for n in graph.node)
    new_w, gx, gu = _run(graph, {"x": x, "w": w, "u": w}, ["new_w", "gx", "gu"])
    y = x @ w
    np.testing.assert_allclose(new_w, w - 0.1 * (x.T @ (2 * y)), rtol=1e-12)
    np.testing.assert_allclose(gx, (2 * y) @ w.T, rtol=1e-12)
    np.testing.assert_array_equal(gu, np.zeros_like(w))  # requested but unconnected: zeros


def test_second_gradients_node_differentiates_through_the_first() -> None:
    """d/dx of (d/dx sum(x^3)) . ones = 6x: the second node sees the first one's backward nodes."""
    from layerserve.server.core.gradients import expand_gradient_nodes

    x = rnd((5,), "float64", 1)
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["x2"]),
        helper.make_node("Mul", ["x2", "x"], ["x3"]),
        helper.make_node("Gradients", ["x3", "x", ""], ["g1"], domain="ai.layerserve", num_ys=1),
        helper.make_node("Gradients", ["g1", "x", ""], ["g2"], domain="ai.layerserve", num_ys=1),
    ]
    graph = graph_of(nodes, {"x": x}, ["g2"])
    assert expand_gradient_nodes(graph, stop=set()) == 2
    (g2,) = _run(graph, {"x": x}, ["g2"])
    np.testing.assert_allclose(g2, 6 * x, rtol=1e-12)


def test_malformed_gradients_node_is_refused() -> None:
    from layerserve.server.core.gradients import GradientError, expand_gradient_nodes

    x = rnd((2,), "float64", 1)
    nodes = [helper.make_node("Gradients", ["x", "x"], ["g", "h"], domain="ai.layerserve", num_ys=1)]
    with pytest.raises(GradientError, match="num_ys"):
        expand_gradient_nodes(graph_of(nodes, {"x": x}, ["g"]), stop=set())


FLOAT16_LAYERS = [entry for entry in LAYERS if entry[0] in (
    "Conv2D", "Conv2DTranspose", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization",
    "Flatten")] + [("Dense", {"units": 3, "activation": "tanh"}, (4, 5), False),
                   ("Dense", {"units": 3, "activation": "gelu"}, (4, 5), False)]


@pytest.mark.parametrize("entry", FLOAT16_LAYERS, ids=_layer_id)
def test_layer_graph_gradient_in_float16_matches_float32(entry: tuple[str, dict[str, Any], tuple[int, ...], bool]
                                                         ) -> None:
    """float16 graphs (ONNX Runtime has every kernel) give the float32 gradients to float16 precision."""
    from tests.gradient_check import analytic

    cls, kwargs, shape, training = entry
    half = layer_case(cls, kwargs, shape, training, "float16")
    full = layer_case(cls, kwargs, shape, training, "float32")
    full.feeds = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in half.feeds.items()}
    got, _ = analytic(half)
    want, _ = analytic(full)
    for x, g16, g32 in zip(half.xs, got, want, strict=True):
        if x in half.unconnected:
            assert g16 is None and g32 is None
            continue
        assert g16 is not None and g32 is not None
        assert g16.dtype == half.feeds[x].dtype, x
        scale = max(1.0, float(np.max(np.abs(g32))))
        np.testing.assert_allclose(g16.astype(np.float32), g32, rtol=3e-2, atol=3e-2 * scale, err_msg=x)
