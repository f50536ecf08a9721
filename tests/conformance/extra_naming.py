"""The naming sequence ``generate.py`` records into ``extra/naming_extra.json`` (naming.json's format).

One graph; steps run in order. ``new`` constructs, ``call`` applies a constructed layer to a
float32 input of ``input_shape``, ``functional`` calls a functional form.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STEPS"]

CLASSES = {
    "Dense": ({"units": 2}, [None, 3]),
    "Conv1D": ({"filters": 1, "kernel_size": 1}, [None, 4, 2]),
    "Conv2D": ({"filters": 1, "kernel_size": 1}, [None, 4, 4, 2]),
    "Conv3D": ({"filters": 1, "kernel_size": 1}, [None, 2, 2, 2, 2]),
    "Conv2DTranspose": ({"filters": 1, "kernel_size": 1}, [None, 4, 4, 2]),
    "Conv3DTranspose": ({"filters": 1, "kernel_size": 1}, [None, 2, 2, 2, 2]),
    "SeparableConv1D": ({"filters": 1, "kernel_size": 1}, [None, 4, 2]),
    "SeparableConv2D": ({"filters": 1, "kernel_size": 1}, [None, 4, 4, 2]),
    "MaxPooling1D": ({"pool_size": 2, "strides": 2}, [None, 4, 2]),
    "MaxPooling2D": ({"pool_size": 2, "strides": 2}, [None, 4, 4, 2]),
    "MaxPooling3D": ({"pool_size": 2, "strides": 2}, [None, 2, 2, 2, 2]),
    "AveragePooling1D": ({"pool_size": 2, "strides": 2}, [None, 4, 2]),
    "AveragePooling2D": ({"pool_size": 2, "strides": 2}, [None, 4, 4, 2]),
    "AveragePooling3D": ({"pool_size": 2, "strides": 2}, [None, 2, 2, 2, 2]),
    "BatchNormalization": ({}, [None, 3]),
    "Dropout": ({"rate": 0.5}, [None, 3]),
    "Flatten": ({}, [None, 2, 3]),
}
FUNCTIONAL = {
    "dense": "Dense", "conv1d": "Conv1D", "conv2d": "Conv2D", "conv3d": "Conv3D",
    "conv2d_transpose": "Conv2DTranspose", "conv3d_transpose": "Conv3DTranspose",
    "separable_conv1d": "SeparableConv1D", "separable_conv2d": "SeparableConv2D",
    "max_pooling1d": "MaxPooling1D", "max_pooling2d": "MaxPooling2D", "max_pooling3d": "MaxPooling3D",
    "average_pooling1d": "AveragePooling1D", "average_pooling2d": "AveragePooling2D",
    "average_pooling3d": "AveragePooling3D", "batch_normalization": "BatchNormalization", "dropout": "Dropout",
    "flatten": "Flatten",
}


def new(ref: str, cls: str, **kwargs: Any) -> dict[str, Any]:
    return {"op": "new", "ref": ref, "class": cls, "kwargs": {**CLASSES[cls][0], **kwargs}}


def call(ref: str, cls: str, shape: list[int | None] | None = None, training: bool | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "call", "ref": ref, "input_shape": CLASSES[cls][1] if shape is None else shape}
    if training is not None:
        step["training"] = training
    return step


def fn(func: str, shape: list[int | None] | None = None, **kwargs: Any) -> dict[str, Any]:
    cls = FUNCTIONAL[func]
    return {"op": "functional", "fn": func, "kwargs": {**CLASSES[cls][0], **kwargs},
            "input_shape": CLASSES[cls][1] if shape is None else shape}


def _every_class() -> list[dict[str, Any]]:
    """Each class twice: names count from 1 per class, scopes from 0, applied in reverse order."""
    steps = []
    for cls in CLASSES:
        steps += [new(f"{cls}_a", cls), new(f"{cls}_b", cls), call(f"{cls}_b", cls), call(f"{cls}_a", cls)]
    return steps


def _explicit_names() -> list[dict[str, Any]]:
    return [
        new("up1", "Conv2DTranspose", name="up"), new("up2", "Conv2DTranspose", name="up"),
        call("up2", "Conv2DTranspose"), call("up1", "Conv2DTranspose"),
        fn("conv2d_transpose", name="up", reuse=True),
        fn("conv2d_transpose", name="up_1", reuse=True),
        fn("conv2d_transpose", name="up"),
        new("d5", "Dense", name="dense_5"), new("d_auto", "Dense"), call("d_auto", "Dense"), call("d5", "Dense"),
        new("caps", "Dense", name="Dense"), call("caps", "Dense"),
        new("underscore", "Dense", name="_fc"), call("underscore", "Dense"),
        new("dash", "Conv2D", name="-c"), call("dash", "Conv2D"), fn("dense", name="_fd"),
        new("dotted", "Dense", name=".fc-2"), call("dotted", "Dense"),
        new("bn_named", "BatchNormalization", name="bn"), call("bn_named", "BatchNormalization", training=True),
        call("bn_named", "BatchNormalization", [None, 3], training=False),
        new("pool_named", "MaxPooling2D", name="pool"), call("pool_named", "MaxPooling2D"),
        new("pool_named2", "MaxPooling2D", name="pool"), call("pool_named2", "MaxPooling2D"),
    ]


def _functional() -> list[dict[str, Any]]:
    steps = [fn(name) for name in FUNCTIONAL]
    steps += [
        fn("dense", name="fc"), fn("dense", name="fc", reuse=True), fn("dense", [None, 5], name="fc", reuse=True),
        fn("dense", name="fc"), fn("dense", name="nope", reuse=True), fn("dense", reuse=True),
        fn("conv2d", name="c"), fn("conv2d", name="c", reuse=True), fn("conv2d", name="c", filters=2, reuse=True),
        fn("separable_conv2d", name="sep"), fn("separable_conv2d", name="sep", reuse=True),
        fn("batch_normalization", name="bnf", training=True), fn("batch_normalization", name="bnf", reuse=True),
        fn("batch_normalization", name="bnf"),
        fn("max_pooling2d", name="mp"), fn("max_pooling2d", name="mp"),
        fn("dropout", name="dr", training=True), fn("flatten", name="fl"), fn("flatten", name="fl"),
        new("fc_class", "Dense", name="fc"), call("fc_class", "Dense"),
        new("c_class", "Conv2D", name="c"), call("c_class", "Conv2D"),
        fn("dense", name="fc_1", reuse=True), fn("dense", [None, 4], name="fc_1", reuse=True),
        fn("dense"), fn("conv2d"), fn("batch_normalization", [None, 2, 3]),
        new("late", "Dense"), call("late", "Dense"),
        new("late_conv", "Conv2D"), call("late_conv", "Conv2D"),
    ]
    return steps


def _raw_new(cls: str, **kwargs: Any) -> dict[str, Any]:
    return {"op": "new", "ref": "failed", "class": cls, "kwargs": kwargs}


def _argument_errors() -> list[dict[str, Any]]:
    """Constructor errors: TF names the layer before most checks, so those use up a number."""
    return [
        _raw_new("Dense", units=2, foo=1), _raw_new("Dense", units=-1), _raw_new("Dense", units="x"),
        _raw_new("Dense", units=2, activation="bogus"), _raw_new("Dense"), new("after", "Dense"),
        _raw_new("Conv2D", filters=0, kernel_size=3), _raw_new("Conv2D", filters=2, kernel_size=[3, 3, 3]),
        _raw_new("Conv2D", filters=2, kernel_size=0), _raw_new("Conv2D", filters=2, kernel_size=[2, -1]),
        _raw_new("Conv2D", filters=2, kernel_size=3, strides=0), _raw_new("Conv2D", filters=2, kernel_size=3,
                                                                           padding="full"),
        _raw_new("Conv2D", filters=2, kernel_size=3, padding="causal"),
        _raw_new("Conv2D", filters=2, kernel_size=3, data_format="NHWC"),
        _raw_new("Conv2D", filters=2, kernel_size=3, strides=2, dilation_rate=2),
        _raw_new("Conv2DTranspose", filters=2, kernel_size=3, padding="causal"),
        _raw_new("SeparableConv1D", filters=2, kernel_size=3, strides=2, dilation_rate=2),
        new("after_conv", "Conv2D"),
        _raw_new("MaxPooling2D", pool_size=2), _raw_new("MaxPooling2D", pool_size=2, strides=None),
        _raw_new("MaxPooling2D", pool_size=0, strides=1), _raw_new("MaxPooling2D", pool_size=[2, 2, 2], strides=1),
        _raw_new("MaxPooling2D", pool_size=2, strides=1, data_format="NCHW"), new("after_pool", "MaxPooling2D"),
        _raw_new("Dropout", rate=1.5), _raw_new("Dropout", rate=-0.1), new("after_dropout", "Dropout"),
        _raw_new("Flatten", data_format="NCHW"), _raw_new("BatchNormalization", axis="a"),
        new("after_bn", "BatchNormalization"),
    ]


def _apply_errors() -> list[dict[str, Any]]:
    """Failures of an apply; a failed first apply still takes the layer's scope."""
    def conv(ref: str, **kwargs: Any) -> dict[str, Any]:
        return {"op": "new", "ref": ref, "class": "Conv2D", "kwargs": {"filters": 1, "kernel_size": 3, **kwargs}}
    return [
        new("bad_rank", "Conv2D"), call("bad_rank", "Conv2D", [None, 4, 2]), call("bad_rank", "Conv2D"),
        new("bad_axis", "Dense"), call("bad_axis", "Dense", [None, 3]), call("bad_axis", "Dense", [None, 4]),
        call("bad_axis", "Dense", [3]), call("bad_axis", "Dense", [None, 5, 3]),
        conv("too_small"), call("too_small", "Conv2D", [None, 1, 1, 1]), call("too_small", "Conv2D", [None, 4, 4, 1]),
        new("t", "Conv2DTranspose"), call("t", "Conv2DTranspose", [None, 2, 2, 2, 1]),
        call("t", "Conv2DTranspose", [None, 2, 2]), call("t", "Conv2DTranspose", [None, 2, 2, 1]),
        call("t", "Conv2DTranspose", [None, 2, 2, 2, 1]),
        {"op": "new", "ref": "bn3", "class": "BatchNormalization", "kwargs": {"axis": 3}}, call("bn3", "BatchNormalization", [None, 3]),
        {"op": "new", "ref": "bn_dup", "class": "BatchNormalization", "kwargs": {"axis": [1, -1]}},
        call("bn_dup", "BatchNormalization", [None, 3]),
        {"op": "new", "ref": "bn_fused", "class": "BatchNormalization", "kwargs": {"axis": -4}},
        call("bn_fused", "BatchNormalization", [None, 2, 2, 3]),
        {"op": "new", "ref": "bn_ok", "class": "BatchNormalization", "kwargs": {}}, call("bn_ok", "BatchNormalization", [None, 3]),
        call("bn_ok", "BatchNormalization", [None, 4]), call("bn_ok", "BatchNormalization", [None, 2, 3]),
        new("flat", "Flatten"), call("flat", "Flatten", []),
        {"op": "new", "ref": "drop1", "class": "Dropout", "kwargs": {"rate": 1.0}},
        call("drop1", "Dropout", [None, 3], training=True), call("drop1", "Dropout", [None, 3], training=False),
        {"op": "new", "ref": "drop_rank", "class": "Dropout", "kwargs": {"noise_shape": [1, 1, 1]}},
        call("drop_rank", "Dropout", [None, 3], training=True),
        *[step for cls, shape in (("Conv1D", [None, 2, 1]), ("Conv2D", [None, 2, 2, 1]), ("Conv3D", [None, 2, 2, 2, 1]),
                                  ("Conv2DTranspose", [None, 2, 2, 1]), ("Conv3DTranspose", [None, 2, 2, 2, 1]),
                                  ("SeparableConv1D", [None, 2, 1]), ("SeparableConv2D", [None, 2, 2, 1]))
          for step in (new(f"f64_{cls}", cls, dtype="float64"), call(f"f64_{cls}", cls, shape))],
        fn("dense", name="fc", units=3, reuse=True),
        new("after_errors", "Conv2D"), call("after_errors", "Conv2D"),
    ]


STEPS: list[dict[str, Any]] = [*_every_class(), *_explicit_names(), *_functional(), *_argument_errors(),
                               *_apply_errors()]
