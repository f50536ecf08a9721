"""The convolution family beyond the public reference cases, against an independent numpy
reference written from layer-api.md §11: float64/float16, channels_first, causal, dilation,
'same' with even kernels, transposes with k < s, extra leading batch dims, second applies on
other shapes, dtype and shape errors, config round trips and the exported ONNX model."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import layerserve
from layerserve.exceptions import InvalidArgumentError, LayerServeError

TOL = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-9}


# ---- numpy reference (channels last) --------------------------------------------------------
def _forward_geometry(n: int, k: int, s: int, d: int, padding: str) -> tuple[int, tuple[int, int]]:
    span = (k - 1) * d + 1
    if padding == "valid":
        return (n - span) // s + 1, (0, 0)
    out = math.ceil(n / s)
    if padding == "causal":
        return out, (span - 1, 0)
    total = max((out - 1) * s + span - n, 0)
    return out, (total // 2, total - total // 2)


def _taps(x: np.ndarray, kernel: tuple[int, ...], strides: list[int], rates: list[int], padding: str) -> Any:
    """Yield (tap, input window read by that tap for every output position), as TF pads."""
    geometry = [_forward_geometry(n, k, s, d, padding)
                for n, k, s, d in zip(x.shape[1:-1], kernel, strides, rates, strict=True)]
    padded = np.pad(x, [(0, 0), *(p for _, p in geometry), (0, 0)])
    for tap in np.ndindex(*kernel):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                       for t, d, (o, _), s in zip(tap, rates, geometry, strides, strict=True))
        yield tap, padded[(slice(None), *window)]


def ref_conv(x: np.ndarray, w: np.ndarray, strides: list[int], padding: str, rates: list[int]) -> np.ndarray:
    rank = w.ndim - 2
    return np.asarray(sum(window @ w[tap] for tap, window in _taps(x, w.shape[:rank], strides, rates, padding)))


def ref_separable(x: np.ndarray, dw: np.ndarray, pw: np.ndarray, strides: list[int], padding: str,
                  rates: list[int]) -> np.ndarray:
    rank = dw.ndim - 2
    depth = np.asarray(sum(window[..., :, None] * dw[tap]
                           for tap, window in _taps(x, dw.shape[:rank], strides, rates, padding)))
    return depth.reshape(*depth.shape[:-2], -1) @ pw.reshape(-1, pw.shape[-1])


def ref_conv_transpose(x: np.ndarray, w: np.ndarray, strides: list[int], padding: str,
                       rates: list[int]) -> np.ndarray:
    """``full[i*s + k*d] += x[i] @ W[k]^T``; crop the forward conv's pad, zero-extend to TF's size."""
    rank = w.ndim - 2
    spans = [(k - 1) * d + 1 for k, d in zip(w.shape[:rank], rates, strict=True)]
    full = np.zeros((x.shape[0], *((n - 1) * s + e for n, s, e in zip(x.shape[1:-1], strides, spans, strict=True)),
                     w.shape[-2]))
    for tap in np.ndindex(*w.shape[:rank]):
        window = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                       for t, d, n, s in zip(tap, rates, x.shape[1:-1], strides, strict=True))
        full[(slice(None), *window)] += x @ w[tap].T
    out = np.zeros((x.shape[0], *(n * s + (max(e - s, 0) if padding == "valid" else 0)
                                  for n, s, e in zip(x.shape[1:-1], strides, spans, strict=True)), w.shape[-2]))
    before = [0 if padding == "valid" else max(e - s, 0) // 2 for e, s in zip(spans, strides, strict=True)]
    crop = tuple(slice(b, b + o) for b, o in zip(before, out.shape[1:-1], strict=True))
    cropped = full[(slice(None), *crop)]
    out[(slice(None), *(slice(0, c) for c in cropped.shape[1:-1]))] = cropped
    return out


# ---- driving a layer ------------------------------------------------------------------------
RANKS = {"Conv1D": 1, "Conv2D": 2, "Conv3D": 3, "Conv2DTranspose": 2, "Conv3DTranspose": 3,
         "SeparableConv1D": 1, "SeparableConv2D": 2}


def _tuple(value: Any, rank: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * rank


def expected(cls: str, kwargs: dict[str, Any], x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    rank = RANKS[cls]
    first = kwargs.get("data_format") == "channels_first"
    xl = np.moveaxis(x, 1, -1) if first else x
    xl = xl.astype(np.float64).reshape(-1, *xl.shape[-rank - 1:])
    args = (_tuple(kwargs.get("strides", 1), rank), kwargs.get("padding", "valid"),
            _tuple(kwargs.get("dilation_rate", 1), rank))
    w = [a.astype(np.float64) for a in weights]
    if cls.startswith("Separable"):
        y = ref_separable(xl, w[0], w[1], *args)
    elif cls.endswith("Transpose"):
        y = ref_conv_transpose(xl, w[0], *args)
    else:
        y = ref_conv(xl, w[0], *args)
    if kwargs.get("use_bias", True):
        y = y + w[-1]
    if kwargs.get("activation") == "relu":
        y = np.maximum(y, 0)
    lead = x.shape[:-rank - 1]
    y = y.reshape(*lead, *y.shape[1:])
    return np.moveaxis(y, -1, len(lead)) if first else y


def _random(shape: tuple[int, ...], dtype: str, seed: int, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def built_layer(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any], x: np.ndarray) -> tuple[Any, list[Any]]:
    layer = getattr(conn.layers, cls)(**kwargs)
    layer.build([None, *x.shape[1:]], dtype=x.dtype)
    weights = [_random(v.shape, x.dtype.name, seed=i + 1, scale=0.3) for i, v in enumerate(layer.weights)]
    layer.set_weights(weights)
    return layer, weights


def check_apply(layer: Any, cls: str, kwargs: dict[str, Any], x: np.ndarray, weights: list[np.ndarray]) -> None:
    y = layer.apply(x)
    assert y.dtype == x.dtype
    want = expected(cls, kwargs, x, weights)
    assert y.shape == want.shape
    tol = TOL[x.dtype.name]
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=tol, atol=tol)
    assert list(layer.compute_output_shape([None, *x.shape[1:]])) == [None, *want.shape[1:]]


CASES = [
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 9, 2), "float64"),
    ("Conv1D", {"filters": 2, "kernel_size": 2, "padding": "causal", "strides": 2, "data_format": "channels_first"},
     (2, 3, 7), "float16"),
    ("Conv2D", {"filters": 3, "kernel_size": 4, "padding": "same", "activation": "relu"}, (2, 5, 6, 2), "float64"),
    ("Conv2D", {"filters": 2, "kernel_size": (2, 3), "strides": 2, "padding": "same",
                "data_format": "channels_first"}, (2, 3, 5, 6), "float32"),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "dilation_rate": (2, 1), "use_bias": False}, (1, 6, 5, 3),
     "float16"),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "data_format": "channels_first"},
     (1, 2, 3, 4, 5), "float64"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3}, (2, 3, 2, 2), "float64"),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": (2, 3), "strides": (3, 2), "padding": "same",
                         "data_format": "channels_first"}, (1, 2, 3, 3), "float32"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}, (1, 3, 3, 2), "float16"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "padding": "same", "dilation_rate": 2}, (1, 4, 5, 2),
     "float64"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "dilation_rate": 2}, (1, 3, 4, 2), "float32"),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (1, 2, 3, 2, 2),
     "float64"),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3, "data_format": "channels_first"},
     (1, 2, 2, 2, 1), "float32"),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 3, "depth_multiplier": 2, "padding": "causal",
                         "dilation_rate": 2}, (2, 8, 2), "float64"),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 2, "depth_multiplier": 2, "padding": "same",
                         "data_format": "channels_first", "activation": "relu"}, (1, 3, 5, 4), "float16"),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 6, 5, 2),
     "float64"),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape", "dtype"), CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_against_numpy_reference(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any],
                                 shape: tuple[int, ...], dtype: str) -> None:
    x = _random(shape, dtype, seed=0)
    layer, weights = built_layer(conn, cls, kwargs, x)
    check_apply(layer, cls, kwargs, x, weights)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_with_extra_leading_batch_dims(conn: layerserve.Connection, dtype: str) -> None:
    kwargs = {"filters": 2, "kernel_size": 2}
    x = _random((2, 5, 5, 5, 3), dtype, seed=0)
    layer, weights = built_layer(conn, "Conv2D", kwargs, x[:, 0])
    assert layer.apply(x).shape == (2, 5, 4, 4, 2)
    check_apply(layer, "Conv2D", kwargs, x, weights)


@pytest.mark.parametrize(("cls", "kwargs"), [
    ("Conv2D", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2}),
])
def test_second_apply_on_another_shape(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any]) -> None:
    x = _random((1, 5, 5, 2), "float64", seed=0)
    layer, weights = built_layer(conn, cls, kwargs, x)
    check_apply(layer, cls, kwargs, x, weights)
    check_apply(layer, cls, kwargs, _random((3, 7, 9, 2), "float64", seed=1), weights)


def test_valid_window_longer_than_the_input(conn: layerserve.Connection) -> None:
    """TF's graph mode knows the input's length: its op refuses a window that does not fit,
    even where Keras' output length would be 0, and the layer stays built."""
    layer = conn.layers.Conv2D(2, 3)
    with pytest.raises(ValueError, match="Negative dimension size caused by subtracting 3 from 2 for 'Conv2D'"):
        layer.apply(np.ones((1, 2, 5, 1), np.float32))
    assert layer.built and layer.scope_name == "conv2d"
    with pytest.raises(ValueError, match="Negative dimension size caused by subtracting 2 from 1"):
        conn.layers.Conv1D(1, 2, dilation_rate=2).apply(np.ones((1, 2, 1), np.float32))
    assert layer.apply(np.ones((1, 3, 5, 1), np.float32)).shape == (1, 1, 3, 2)


def test_conv_rejects_another_float_dtype(conn: layerserve.Connection) -> None:
    layer = conn.layers.Conv2D(2, 3)
    layer.apply(np.ones((1, 5, 5, 1), np.float32))
    with pytest.raises(TypeError, match="Input 'filter' of 'Conv2D' Op has type float32"):
        layer.apply(np.ones((1, 5, 5, 1), np.float64))


@pytest.mark.parametrize(("cls", "kwargs", "shape", "message"), [
    ("Conv2D", {"filters": 2, "kernel_size": 7}, (1, 5, 5, 1), "One of the dimensions in the output is <= 0"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2}, (1, 2, 5, 5, 1), "Inputs should have rank 4"),
    ("Conv1D", {"filters": 2, "kernel_size": 2}, (1, 5), "expected min_ndim=3, found ndim=2"),
])
def test_shape_errors(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any], shape: tuple[int, ...],
                      message: str) -> None:
    layer = getattr(conn.layers, cls)(**kwargs)
    with pytest.raises(ValueError, match=message):
        layer.apply(np.ones(shape, np.float32))
    assert not layer.built


def test_undefined_channel_dim(conn: layerserve.Connection) -> None:
    with pytest.raises(ValueError, match="The channel dimension of the inputs should be defined"):
        conn.layers.Conv2D(2, 2).build([None, 4, 4, None])


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    ("Conv2D", {"filters": 2, "kernel_size": (2, 2, 2)}, "must be a tuple of 2 integers"),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 2},
     r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    ("Conv1D", {"filters": 0, "kernel_size": 2}, "Expected a strictly positive value. Received filters=0."),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "padding": "causal"}, "Causal padding is only supported"),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "padding": "full"}, "padding"),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "data_format": "NDHWC"}, "data_format"),
])
def test_construction_errors(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        getattr(conn.layers, cls)(**kwargs)
    assert info.value.status == 422


@pytest.mark.parametrize("kwargs", [{"groups": 2}, {"output_padding": 1}])
def test_unsupported_arguments_are_named(conn: layerserve.Connection, kwargs: dict[str, Any]) -> None:
    with pytest.raises(LayerServeError) as info:
        conn.layers.Conv2DTranspose(2, 3, **kwargs)
    assert (info.value.status, info.value.code) == (422, "unsupported_argument")
    assert next(iter(kwargs)) in info.value.message


@pytest.mark.parametrize("cls", sorted(RANKS))
def test_config_round_trip_and_onnx_export(conn: layerserve.Connection, cls: str) -> None:
    """``from_config(get_config())`` makes an equal unbuilt layer; the exported model runs alone
    in ONNX Runtime and gives the apply's output (both the ONNX Conv and the float64 graphs)."""
    rank = RANKS[cls]
    dtype = "float32" if cls in ("Conv2D", "Conv3DTranspose", "SeparableConv1D") else "float64"
    x = _random((1, *[4] * rank, 2), dtype, seed=0)
    layer, _ = built_layer(conn, cls, {"filters": 2, "kernel_size": 2, "padding": "same"}, x)
    y = layer.apply(x)
    config = layer.get_config()
    copy = type(layer).from_config(config)  # conn is the default connection
    assert not copy.built and copy.get_config() == config
    model = httpx.get(f"{conn.url}/v1/graphs/{conn.graph}/layers/{layer.id}/onnx").content
    onnx.checker.check_model(onnx.load_from_string(model))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], y, rtol=1e-6, atol=1e-6)
    assert config["dtype"] == dtype
