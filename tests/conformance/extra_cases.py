"""The extra reference cases ``generate.py`` records: plain descriptions, no TensorFlow.

Each case names a class, its kwargs (FORMAT.md encoding), the input shapes and dtype, and the
applies as ``(input index, training)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "FUNCTIONAL", "TOLERANCE", "CaseSpec"]

Apply = tuple[int, bool | None]

TOLERANCE = {"float16": {"rtol": 1e-2, "atol": 1e-2}, "float32": {"rtol": 1e-4, "atol": 1e-4},
             "float64": {"rtol": 1e-7, "atol": 1e-7}}
FUNCTIONAL = {
    "Dense": "dense", "Conv1D": "conv1d", "Conv2D": "conv2d", "Conv3D": "conv3d",
    "Conv2DTranspose": "conv2d_transpose", "Conv3DTranspose": "conv3d_transpose",
    "SeparableConv1D": "separable_conv1d", "SeparableConv2D": "separable_conv2d",
    "MaxPooling1D": "max_pooling1d", "MaxPooling2D": "max_pooling2d", "MaxPooling3D": "max_pooling3d",
    "AveragePooling1D": "average_pooling1d", "AveragePooling2D": "average_pooling2d",
    "AveragePooling3D": "average_pooling3d", "BatchNormalization": "batch_normalization",
    "Dropout": "dropout", "Flatten": "flatten",
}
ACTIVATIONS = ("linear", "relu", "relu6", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "elu", "selu",
               "softplus", "softsign", "swish", "silu", "gelu", "exponential", "mish", "leaky_relu")
L1 = {"l1": 0.01}
L2 = {"l2": 0.02}
L1L2 = {"l1": 0.01, "l2": 0.03}


@dataclass(frozen=True)
class CaseSpec:
    id: str
    cls: str
    kwargs: dict[str, Any]
    shapes: tuple[tuple[int, ...], ...]
    dtype: str = "float32"
    applies: tuple[Apply, ...] = ((0, None),)
    description: str = ""
    input_scale: float = 1.0


def c(id: str, cls: str, kwargs: dict[str, Any], *shapes: tuple[int, ...], dtype: str = "float32",
      applies: tuple[Apply, ...] = ((0, None),), description: str = "", scale: float = 1.0) -> CaseSpec:
    return CaseSpec(id, cls, kwargs, shapes, dtype, applies, description, scale)


TWICE: tuple[Apply, ...] = ((0, None), (1, None))


def _dense() -> list[CaseSpec]:
    out = [
        c("dense_f16", "Dense", {"units": 3}, (2, 4), dtype="float16"),
        c("dense_f64_regs", "Dense", {"units": 3, "kernel_regularizer": L1L2, "bias_regularizer": L2,
                                      "activity_regularizer": L1}, (2, 4), dtype="float64"),
        c("dense_rank3", "Dense", {"units": 2, "activation": "tanh"}, (2, 3, 4)),
        c("dense_rank4_f64", "Dense", {"units": 2}, (2, 1, 3, 4), dtype="float64"),
        c("dense_frozen", "Dense", {"units": 2, "trainable": False, "kernel_regularizer": L2}, (3, 4),
          description="trainable=False at construction: variables are created non-trainable"),
        c("dense_named", "Dense", {"units": 2, "name": "my_fc", "bias_regularizer": L1}, (3, 4)),
        c("dense_twice", "Dense", {"units": 2, "activity_regularizer": L1L2, "kernel_regularizer": L1},
          (3, 4), (5, 4), applies=TWICE, description="applied to two inputs: one activity loss per input"),
        c("dense_twice_rank3", "Dense", {"units": 3, "activity_regularizer": L2}, (2, 4), (2, 3, 4), applies=TWICE),
        c("dense_f16_activity_overflow", "Dense", {"units": 3, "activation": "exponential", "activity_regularizer": L1L2},
          (4, 5), dtype="float16", scale=4.0, description="float16 squares overflow: TF's activity loss is inf"),
        c("dense_f16_activity", "Dense", {"units": 2, "activity_regularizer": L1L2, "kernel_regularizer": L2},
          (4, 3), dtype="float16"),
    ]
    out += [c(f"dense_act_{name}", "Dense", {"units": 4, "activation": name}, (3, 5), scale=2.0)
            for name in ACTIVATIONS]
    out += [c(f"dense_act_{name}_f64", "Dense", {"units": 3, "activation": name}, (2, 4), dtype="float64", scale=2.0)
            for name in ("gelu", "selu", "elu", "softplus", "mish", "swish", "hard_sigmoid", "leaky_relu",
                         "log_softmax", "softmax")]
    out += [c(f"dense_act_{name}_f16", "Dense", {"units": 3, "activation": name}, (2, 4), dtype="float16")
            for name in ("gelu", "softmax", "elu", "sigmoid", "mish", "softplus")]
    return out


def _conv() -> list[CaseSpec]:
    cf = {"data_format": "channels_first"}
    return [
        c("conv1d_f16", "Conv1D", {"filters": 2, "kernel_size": 3}, (2, 7, 3), dtype="float16"),
        c("conv1d_f64_same", "Conv1D", {"filters": 2, "kernel_size": 4, "padding": "same"}, (2, 7, 3),
          dtype="float64"),
        c("conv1d_causal", "Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal"}, (2, 6, 2)),
        c("conv1d_causal_dilated", "Conv1D", {"filters": 3, "kernel_size": 2, "padding": "causal",
                                              "dilation_rate": 2}, (2, 7, 2)),
        c("conv1d_causal_f64", "Conv1D", {"filters": 2, "kernel_size": 3, "padding": "CAUSAL"}, (1, 5, 2),
          dtype="float64"),
        c("conv1d_cf", "Conv1D", {"filters": 2, "kernel_size": 3, **cf}, (2, 3, 7)),
        c("conv1d_cf_same_s2", "Conv1D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", **cf},
          (2, 3, 7)),
        c("conv1d_even_same_s3", "Conv1D", {"filters": 2, "kernel_size": 4, "strides": 3, "padding": "same"},
          (2, 8, 2)),
        c("conv1d_regs", "Conv1D", {"filters": 2, "kernel_size": 3, "kernel_regularizer": L1L2,
                                    "bias_regularizer": L1, "activity_regularizer": L2, "activation": "relu"},
          (2, 6, 2)),
        c("conv1d_rank4", "Conv1D", {"filters": 2, "kernel_size": 2}, (2, 3, 5, 2),
          description="min_ndim=3: extra leading dims are batch dims"),
        c("conv2d_f16", "Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 5, 5, 3), dtype="float16"),
        c("conv2d_f64", "Conv2D", {"filters": 2, "kernel_size": [2, 3], "strides": [2, 1]}, (2, 6, 5, 2),
          dtype="float64"),
        c("conv2d_cf_valid", "Conv2D", {"filters": 3, "kernel_size": 3, **cf}, (2, 2, 5, 6)),
        c("conv2d_cf_same_s2", "Conv2D", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", **cf},
          (2, 3, 5, 6)),
        c("conv2d_cf_dilated", "Conv2D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "padding": "same",
                                              **cf}, (1, 2, 5, 5)),
        c("conv2d_even_same", "Conv2D", {"filters": 2, "kernel_size": 2, "padding": "same"}, (2, 5, 4, 2)),
        c("conv2d_even_same_s2", "Conv2D", {"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"},
          (1, 7, 6, 2)),
        c("conv2d_dilated_asym", "Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": [2, 1],
                                            "padding": "same"}, (2, 6, 5, 2)),
        c("conv2d_frozen_nobias", "Conv2D", {"filters": 2, "kernel_size": 2, "use_bias": False, "trainable": False,
                                             "kernel_regularizer": L1}, (2, 4, 4, 2)),
        c("conv2d_twice", "Conv2D", {"filters": 2, "kernel_size": 3, "activity_regularizer": L1,
                                     "activation": "relu"}, (2, 5, 5, 2), (3, 7, 6, 2), applies=TWICE,
          description="a second input with another batch and spatial size"),
        c("conv2d_named_regs", "Conv2D", {"filters": 2, "kernel_size": 1, "name": "Feature.Map-1",
                                          "kernel_regularizer": L2, "bias_regularizer": L1L2}, (2, 3, 3, 2)),
        c("conv2d_rank5", "Conv2D", {"filters": 2, "kernel_size": 2}, (2, 2, 4, 4, 3)),
        c("conv3d_f16", "Conv3D", {"filters": 2, "kernel_size": 2}, (1, 3, 4, 3, 2), dtype="float16"),
        c("conv3d_f64_same", "Conv3D", {"filters": 2, "kernel_size": 3, "padding": "same", "strides": 2},
          (1, 4, 5, 3, 2), dtype="float64"),
        c("conv3d_cf", "Conv3D", {"filters": 2, "kernel_size": 2, **cf}, (1, 2, 3, 4, 3)),
        c("conv3d_cf_same_dilated", "Conv3D", {"filters": 2, "kernel_size": 2, "padding": "same",
                                               "dilation_rate": 2, **cf}, (1, 2, 4, 3, 4)),
        c("conv3d_even_same_s2_regs", "Conv3D", {"filters": 2, "kernel_size": [2, 2, 4], "strides": 2,
                                                 "padding": "same", "kernel_regularizer": L1,
                                                 "activity_regularizer": L1L2}, (2, 3, 4, 5, 1)),
    ]


def _transpose() -> list[CaseSpec]:
    cf = {"data_format": "channels_first"}
    return [
        c("conv2dT_f16", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2}, (1, 3, 3, 2),
          dtype="float16"),
        c("conv2dT_f64_same", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
          (2, 3, 4, 2), dtype="float64"),
        c("conv2dT_cf_valid", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, **cf},
          (1, 3, 3, 4)),
        c("conv2dT_cf_same", "Conv2DTranspose", {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same",
                                                 **cf}, (2, 2, 3, 3)),
        c("conv2dT_even_same_s2", "Conv2DTranspose", {"filters": 2, "kernel_size": 4, "strides": 2,
                                                      "padding": "same"}, (1, 3, 3, 2)),
        c("conv2dT_k2s3_valid", "Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3}, (1, 3, 2, 2),
          description="kernel < stride, 'valid': zeros (bias) at the end"),
        c("conv2dT_k1s2_same", "Conv2DTranspose", {"filters": 2, "kernel_size": 1, "strides": 2, "padding": "same"},
          (1, 3, 3, 2)),
        c("conv2dT_asym_same", "Conv2DTranspose", {"filters": 2, "kernel_size": [3, 2], "strides": [2, 1],
                                                   "padding": "same"}, (1, 3, 4, 2)),
        c("conv2dT_k5s2_same", "Conv2DTranspose", {"filters": 1, "kernel_size": 5, "strides": 2, "padding": "same"},
          (1, 3, 3, 2)),
        c("conv2dT_twice_regs", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "kernel_regularizer": L1L2,
                                                    "bias_regularizer": L2, "activity_regularizer": L1},
          (1, 3, 3, 2), (2, 4, 2, 2), applies=TWICE),
        c("conv2dT_frozen_named", "Conv2DTranspose", {"filters": 2, "kernel_size": 2, "trainable": False,
                                                      "name": "up"}, (1, 2, 2, 2)),
        c("conv3dT_f16", "Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2}, (1, 2, 2, 2, 2),
          dtype="float16"),
        c("conv3dT_f64_same", "Conv3DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
          (1, 2, 3, 2, 2), dtype="float64"),
        c("conv3dT_cf", "Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": [1, 2, 1], **cf},
          (1, 2, 2, 3, 2)),
        c("conv3dT_cf_same_even", "Conv3DTranspose", {"filters": 2, "kernel_size": 4, "strides": 2,
                                                      "padding": "same", **cf}, (1, 2, 2, 2, 3)),
        c("conv3dT_k1s3_valid", "Conv3DTranspose", {"filters": 1, "kernel_size": [1, 2, 1], "strides": 3},
          (1, 2, 2, 2, 2)),
    ]


def _separable() -> list[CaseSpec]:
    cf = {"data_format": "channels_first"}
    return [
        c("sepconv1d_f16", "SeparableConv1D", {"filters": 2, "kernel_size": 3}, (2, 6, 2), dtype="float16"),
        c("sepconv1d_f64_dm2", "SeparableConv1D", {"filters": 3, "kernel_size": 2, "depth_multiplier": 2,
                                                   "padding": "same"}, (2, 5, 2), dtype="float64"),
        c("sepconv1d_causal", "SeparableConv1D", {"filters": 2, "kernel_size": 3, "padding": "causal",
                                                  "dilation_rate": 2}, (2, 7, 2)),
        c("sepconv1d_cf", "SeparableConv1D", {"filters": 2, "kernel_size": 3, "depth_multiplier": 2, **cf},
          (2, 3, 6)),
        c("sepconv1d_cf_same_s2", "SeparableConv1D", {"filters": 2, "kernel_size": 2, "strides": 2,
                                                      "padding": "same", **cf}, (1, 2, 7)),
        c("sepconv1d_dm3_same_s2", "SeparableConv1D", {"filters": 2, "kernel_size": 4, "strides": 2,
                                                       "depth_multiplier": 3, "padding": "same"}, (2, 7, 2)),
        c("sepconv1d_regs_nobias", "SeparableConv1D", {"filters": 2, "kernel_size": 2, "use_bias": False,
                                                       "depthwise_regularizer": L1, "pointwise_regularizer": L2,
                                                       "activity_regularizer": L1L2}, (2, 5, 3)),
        c("sepconv2d_f16", "SeparableConv2D", {"filters": 2, "kernel_size": 2}, (1, 4, 4, 3), dtype="float16"),
        c("sepconv2d_f64_same", "SeparableConv2D", {"filters": 2, "kernel_size": 3, "depth_multiplier": 2,
                                                    "padding": "same"}, (1, 4, 5, 2), dtype="float64"),
        c("sepconv2d_cf", "SeparableConv2D", {"filters": 3, "kernel_size": 2, **cf}, (2, 2, 4, 4)),
        c("sepconv2d_cf_same_s2_dm2", "SeparableConv2D", {"filters": 2, "kernel_size": 3, "strides": 2,
                                                          "padding": "same", "depth_multiplier": 2, **cf},
          (1, 2, 5, 6)),
        c("sepconv2d_dilated", "SeparableConv2D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2},
          (1, 5, 5, 2)),
        c("sepconv2d_even_same", "SeparableConv2D", {"filters": 2, "kernel_size": [2, 4], "padding": "same"},
          (1, 4, 5, 2)),
        c("sepconv2d_regs_twice", "SeparableConv2D", {"filters": 2, "kernel_size": 2, "depthwise_regularizer": L1L2,
                                                      "pointwise_regularizer": L1, "bias_regularizer": L2,
                                                      "activity_regularizer": L1, "activation": "relu"},
          (1, 3, 3, 2), (2, 4, 3, 2), applies=TWICE),
        c("sepconv2d_frozen", "SeparableConv2D", {"filters": 2, "kernel_size": 2, "trainable": False},
          (1, 3, 3, 2)),
    ]


def _pooling() -> list[CaseSpec]:
    cf = {"data_format": "channels_first"}
    out = []
    for kind in ("Max", "Average"):
        k = kind[:3].lower() if kind == "Max" else "avg"
        cls1, cls2, cls3 = (f"{kind}Pooling{n}D" for n in (1, 2, 3))
        out += [
            c(f"{k}pool1d_f16", cls1, {"pool_size": 2, "strides": 2}, (2, 6, 2), dtype="float16"),
            c(f"{k}pool1d_f64_same", cls1, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 2),
              dtype="float64"),
            c(f"{k}pool1d_cf_same", cls1, {"pool_size": 2, "strides": 1, "padding": "same", **cf}, (2, 3, 5)),
            c(f"{k}pool2d_f16_same", cls2, {"pool_size": 3, "strides": 2, "padding": "same"}, (1, 5, 4, 2),
              dtype="float16"),
            c(f"{k}pool2d_f64", cls2, {"pool_size": [2, 3], "strides": [1, 2]}, (2, 4, 5, 2), dtype="float64"),
            c(f"{k}pool2d_cf", cls2, {"pool_size": 2, "strides": 2, **cf}, (2, 3, 4, 5)),
            c(f"{k}pool2d_cf_same", cls2, {"pool_size": 3, "strides": 2, "padding": "same", **cf}, (1, 2, 5, 6)),
            c(f"{k}pool2d_even_same", cls2, {"pool_size": 2, "strides": 3, "padding": "same"}, (1, 5, 7, 1)),
            c(f"{k}pool2d_twice", cls2, {"pool_size": 2, "strides": 2, "name": f"{k}_pool"}, (1, 4, 4, 2),
              (2, 6, 5, 2), applies=TWICE),
            c(f"{k}pool3d_cf", cls3, {"pool_size": 2, "strides": 1, **cf}, (1, 2, 3, 3, 3)),
            c(f"{k}pool3d_cf_same", cls3, {"pool_size": [2, 3, 2], "strides": 2, "padding": "same", **cf},
              (1, 2, 3, 5, 4)),
            c(f"{k}pool3d_same_even", cls3, {"pool_size": 2, "strides": [1, 2, 3], "padding": "same"},
              (1, 3, 4, 5, 2)),
            c(f"{k}pool2d_activity", cls2, {"pool_size": 2, "strides": 1, "activity_regularizer": L1L2},
              (2, 3, 3, 2)),
        ]
    return out


TRAIN_INFER: tuple[Apply, ...] = ((0, False), (0, True))


def _batch_norm() -> list[CaseSpec]:
    bn = "BatchNormalization"
    m = {"momentum": 0.9}
    return [
        c("bn_rank2_f64", bn, m, (5, 3), dtype="float64", applies=TRAIN_INFER),
        c("bn_rank2_f16", bn, m, (6, 3), dtype="float16", applies=TRAIN_INFER),
        c("bn_rank1", bn, m, (5,), applies=TRAIN_INFER),
        c("bn_rank3_axis_list", bn, {"axis": [1, 2], **m}, (4, 2, 3), applies=TRAIN_INFER),
        c("bn_rank3_axis_neg2", bn, {"axis": -2, **m}, (4, 3, 2), applies=TRAIN_INFER),
        c("bn_rank4_axis1", bn, {"axis": 1, **m}, (3, 2, 3, 3), applies=TRAIN_INFER,
          description="channels-first BN: fused"),
        c("bn_rank4_axis_neg3", bn, {"axis": -3, **m}, (3, 2, 3, 3), applies=TRAIN_INFER),
        c("bn_rank4_axis2", bn, {"axis": 2, **m}, (3, 2, 3, 2), applies=TRAIN_INFER, description="not fused"),
        c("bn_rank4_axis_list", bn, {"axis": [1, 3], **m}, (3, 2, 2, 3), applies=TRAIN_INFER),
        c("bn_rank4_axis0", bn, {"axis": 0, **m}, (2, 3, 2, 2), applies=TRAIN_INFER),
        c("bn_rank4_unfused", bn, {"fused": False, **m}, (3, 3, 3, 2), applies=TRAIN_INFER),
        c("bn_rank4_fused_true", bn, {"fused": True, "epsilon": 1e-6, **m}, (2, 3, 3, 2), applies=TRAIN_INFER,
          description="epsilon below the fused kernel's floor"),
        c("bn_rank4_f16", bn, {"epsilon": 0.01, **m}, (3, 3, 3, 2), dtype="float16", applies=TRAIN_INFER),
        c("bn_rank4_f64", bn, m, (3, 3, 3, 2), dtype="float64", applies=TRAIN_INFER),
        c("bn_rank5", bn, m, (2, 2, 3, 2, 2), applies=TRAIN_INFER),
        c("bn_rank5_axis1_f16", bn, {"axis": 1, **m}, (2, 2, 3, 2, 2), dtype="float16", applies=TRAIN_INFER),
        c("bn_rank5_f64_axis1", bn, {"axis": 1, **m}, (2, 2, 2, 2, 3), dtype="float64", applies=TRAIN_INFER),
        c("bn_no_center", bn, {"center": False, "gamma_regularizer": L2, **m}, (4, 3), applies=TRAIN_INFER),
        c("bn_no_scale", bn, {"scale": False, "beta_regularizer": L1, **m}, (2, 3, 3, 2), applies=TRAIN_INFER),
        c("bn_no_center_no_scale", bn, {"center": False, "scale": False, **m}, (2, 2, 2, 3), applies=TRAIN_INFER),
        c("bn_regs_activity", bn, {"gamma_regularizer": L1L2, "beta_regularizer": L2, "activity_regularizer": L1,
                                   **m}, (4, 3), applies=TRAIN_INFER),
        c("bn_frozen_training", bn, {"trainable": False, **m}, (4, 3), applies=((0, True), (0, None)),
          description="trainable=False still normalises with batch statistics; no updates"),
        c("bn_frozen_rank4", bn, {"trainable": False, "gamma_regularizer": L1, **m}, (3, 2, 2, 2),
          applies=((0, True),)),
        c("bn_twice_train_infer", bn, {"momentum": 0.8, "name": "norm"}, (4, 3), (6, 3),
          applies=((0, True), (1, False)), description="updates only for the training input"),
        c("bn_twice_train_train", bn, m, (2, 3, 3, 2), (3, 2, 2, 2), applies=((0, True), (1, True), (0, None))),
        c("bn_twice_f64", bn, {"momentum": 0.5, "epsilon": 0.1}, (5, 2), (3, 2), dtype="float64",
          applies=((0, True), (1, True))),
        c("bn_momentum_eps", bn, {"momentum": 0.7, "epsilon": 0.5}, (2, 2, 2, 3), applies=TRAIN_INFER),
    ]


def _dropout_flatten() -> list[CaseSpec]:
    d, f = "Dropout", "Flatten"
    return [
        c("dropout_f16", d, {"rate": 0.4}, (20, 30), dtype="float16", applies=((0, None), (0, True))),
        c("dropout_f64", d, {"rate": 0.25, "seed": 3}, (20, 30), dtype="float64", applies=((0, False), (0, True))),
        c("dropout_rate0", d, {"rate": 0.0}, (3, 4), applies=((0, True),)),
        c("dropout_noise_full", d, {"rate": 0.5, "noise_shape": [40, 1]}, (40, 12), applies=((0, True),)),
        c("dropout_noise_rank4", d, {"rate": 0.3, "noise_shape": [None, 1, 1, None]}, (10, 3, 3, 8),
          applies=((0, True), (0, False))),
        c("dropout_noise_mid", d, {"rate": 0.2, "noise_shape": [None, None, 1]}, (10, 20, 3), applies=((0, True),)),
        c("dropout_twice", d, {"rate": 0.5, "name": "drop"}, (30, 20), (20, 10), applies=((0, True), (1, False))),
        c("flatten_cf_rank4", f, {"data_format": "channels_first"}, (2, 3, 2, 2)),
        c("flatten_cf_rank3", f, {"data_format": "channels_first"}, (2, 3, 4)),
        c("flatten_cf_rank5", f, {"data_format": "channels_first"}, (2, 2, 2, 1, 3)),
        c("flatten_rank1", f, {}, (5,)),
        c("flatten_rank2", f, {}, (3, 4)),
        c("flatten_cf_rank2", f, {"data_format": "channels_first"}, (3, 4)),
        c("flatten_f16", f, {}, (2, 2, 3), dtype="float16"),
        c("flatten_f64_twice", f, {"name": "flat"}, (2, 3, 2), (3, 2, 3), dtype="float64", applies=TWICE),
        c("flatten_activity", f, {"activity_regularizer": L1L2}, (2, 3, 2)),
    ]


def _arguments() -> list[CaseSpec]:
    """Explicit dtypes, argument spellings TF normalises, and the same input applied twice."""
    bn = "BatchNormalization"
    return [
        c("dense_dtype64_on_f32", "Dense", {"units": 2, "dtype": "float64", "kernel_regularizer": L2}, (2, 3),
          description="explicit dtype casts the input"),
        c("dense_dtype16_on_f32", "Dense", {"units": 2, "dtype": "float16"}, (2, 3)),
        c("bn_dtype64_on_f32", bn, {"dtype": "float64", "momentum": 0.9}, (4, 3), applies=TRAIN_INFER),
        c("bn_dtype16_on_f32", bn, {"dtype": "float16", "momentum": 0.9}, (3, 2, 2, 3), applies=TRAIN_INFER),
        c("maxpool2d_dtype64_on_f32", "MaxPooling2D", {"pool_size": 2, "strides": 1, "dtype": "float64"},
          (1, 3, 3, 2)),
        c("dropout_dtype64_on_f32", "Dropout", {"rate": 0.5, "dtype": "float64"}, (3, 4), applies=((0, False),)),
        c("flatten_dtype16_on_f32", "Flatten", {"dtype": "float16"}, (2, 2, 3)),
        c("dense_units_str", "Dense", {"units": "3", "activation": None, "trainable": True}, (2, 2)),
        c("conv2d_spellings", "Conv2D", {"filters": 2, "kernel_size": [2, 2], "strides": [1, 1], "padding": "SAME",
                                         "data_format": "channels_last", "dilation_rate": [1, 1]}, (1, 3, 3, 1)),
        c("conv1d_list_args", "Conv1D", {"filters": 1, "kernel_size": [3], "strides": [2], "padding": "Valid"},
          (1, 7, 2)),
        c("maxpool1d_list_args", "MaxPooling1D", {"pool_size": [2], "strides": [1], "padding": "SAME"}, (1, 5, 2)),
        c("avgpool2d_upper_same", "AveragePooling2D", {"pool_size": [3, 1], "strides": [2, 1], "padding": "SAME"},
          (1, 5, 3, 1)),
        c("bn_axis_list_single", bn, {"axis": [3], "momentum": 0.9}, (2, 2, 2, 3), applies=TRAIN_INFER),
        c("bn_axis_neg_list", bn, {"axis": [-1], "momentum": 0.9}, (4, 3), applies=TRAIN_INFER),
        c("bn_fused_true_rank2", bn, {"fused": True, "momentum": 0.9}, (4, 3), applies=TRAIN_INFER,
          description="fused=True quietly falls back on rank 2"),
        c("bn_fused_true_rank3", bn, {"fused": True, "momentum": 0.9}, (2, 3, 3), applies=TRAIN_INFER),
        c("dense_same_input_twice", "Dense", {"units": 2, "activity_regularizer": L1}, (3, 2),
          applies=((0, None), (0, None)), description="get_losses_for(x) gives both activity losses"),
        c("bn_same_input_twice", bn, {"momentum": 0.9}, (4, 2), applies=((0, True), (0, True))),
        c("flatten_cf_rank1", "Flatten", {"data_format": "channels_first"}, (4,)),
        c("dropout_seeded_twice", "Dropout", {"rate": 0.3, "seed": 7}, (40, 10), applies=((0, True), (0, True))),
    ]


CASES: list[CaseSpec] = [*_dense(), *_conv(), *_transpose(), *_separable(), *_pooling(), *_batch_norm(),
                         *_dropout_flatten(), *_arguments()]
