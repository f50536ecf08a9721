"""Pooling, BatchNormalization, Dropout and Flatten against numpy references of layer-api.md's
formulas, for what the public cases do not cover: float16/float64, channels_first, 'same'
average counts, BN axes and fused/non-fused updates, running updates, Dropout masks."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import layerserve

TOL = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-7}


def _rand(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(actual: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=TOL[dtype], atol=TOL[dtype])


# ---- pooling ----------------------------------------------------------------------------
def _pool_ref(x: np.ndarray, k: tuple[int, ...], s: tuple[int, ...], same: bool, op: str,
              channels_first: bool) -> np.ndarray:
    """Pooling over explicit windows, clipped to the input (TF's 'same': extra pad at the end)."""
    xf = np.moveaxis(x.astype(np.float64), 1, -1) if channels_first else x.astype(np.float64)
    starts, outs = [], []
    for n, kk, ss in zip(xf.shape[1:-1], k, s, strict=True):
        out = -(-n // ss) if same else (n - kk) // ss + 1
        before = max((out - 1) * ss + kk - n, 0) // 2 if same else 0
        outs.append(out)
        starts.append([o * ss - before for o in range(out)])
    y = np.empty((xf.shape[0], *outs, xf.shape[-1]))
    axes = tuple(range(1, 1 + len(outs)))
    for o in np.ndindex(*outs):
        window = tuple(slice(max(st[i], 0), st[i] + kk) for st, i, kk in zip(starts, o, k, strict=True))
        cells = xf[(slice(None), *window, slice(None))]
        y[(slice(None), *o, slice(None))] = cells.max(axis=axes) if op == "max" else cells.mean(axis=axes)
    return np.moveaxis(y, -1, 1) if channels_first else y


POOLS = [
    ("AveragePooling2D", "float64", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 3)),
    ("AveragePooling1D", "float64", {"pool_size": 2, "strides": 1}, (2, 7, 2)),
    ("AveragePooling1D", "float64", {"pool_size": 4, "strides": 3, "padding": "SAME",
                                     "data_format": "channels_first"}, (2, 3, 10)),
    ("AveragePooling2D", "float32", {"pool_size": (2, 3), "strides": (1, 2), "padding": "same",
                                     "data_format": "channels_first"}, (2, 3, 5, 5)),
    ("AveragePooling2D", "float16", {"pool_size": 2, "strides": 2, "padding": "same"}, (1, 5, 5, 2)),
    ("MaxPooling2D", "float16", {"pool_size": 3, "strides": 2, "padding": "same",
                                 "data_format": "channels_first"}, (2, 2, 5, 6)),
    ("MaxPooling1D", "float64", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 8, 3)),
    ("AveragePooling3D", "float32", {"pool_size": 2, "strides": (1, 2, 2), "padding": "same",
                                     "data_format": "channels_first"}, (1, 2, 3, 5, 4)),
    ("MaxPooling3D", "float32", {"pool_size": (1, 2, 3), "strides": 2, "padding": "same"}, (1, 3, 4, 5, 2)),
]


@pytest.mark.parametrize(("cls", "dtype", "kwargs", "shape"), POOLS, ids=[f"{p[0]}-{p[1]}-{i}"
                                                                          for i, p in enumerate(POOLS)])
def test_pooling_matches_reference(conn: layerserve.Connection, cls: str, dtype: str, kwargs: dict[str, Any],
                                   shape: tuple[int, ...]) -> None:
    layer = getattr(conn.layers, cls)(**kwargs)
    x = _rand(shape, dtype)
    y = layer(x)
    rank = len(shape) - 2
    k, s = (np.broadcast_to(kwargs[key], (rank,)) for key in ("pool_size", "strides"))
    want = _pool_ref(x, tuple(k), tuple(s), kwargs.get("padding", "valid").lower() == "same",
                     "max" if cls.startswith("Max") else "avg", kwargs.get("data_format") == "channels_first")
    assert y.dtype.name == dtype and y.shape == want.shape
    _close(y, want, dtype)
    assert layer.compute_output_shape([None, *shape[1:]]) == (None, *want.shape[1:])


def test_pooling_errors(conn: layerserve.Connection) -> None:
    layer = conn.layers.MaxPooling2D(7, 1)
    with pytest.raises(ValueError, match="Negative dimension size caused by subtracting 7 from 5"):
        layer(np.zeros((1, 5, 5, 3), np.float32))
    assert layer.built  # TF builds the layer, then its op refuses the window
    with pytest.raises(ValueError, match=r"Argument `strides` must not be None\."):
        conn.layers.AveragePooling2D(2, None)
    with pytest.raises(TypeError, match="strides"):
        conn.layers.MaxPooling1D(2)  # type: ignore[call-arg]
    for cls in ("MaxPooling3D", "AveragePooling3D"):
        for dtype in ("float16", "float64"):
            with pytest.raises(TypeError, match=dtype):
                getattr(conn.layers, cls)(2, 2)(np.zeros((1, 2, 2, 2, 1), dtype))


# ---- BatchNormalization -----------------------------------------------------------------
def _bn_ref(x: np.ndarray, weights: list[np.ndarray], axes: list[int], eps: float, *,
            training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output, batch mean and biased batch variance (in the parameters' shape)."""
    xf = x.astype(np.float64)
    bshape = [d if i in axes else 1 for i, d in enumerate(x.shape)]
    gamma, beta, mm, mv = (w.astype(np.float64).reshape(bshape) for w in weights)
    reduce = tuple(i for i in range(x.ndim) if i not in axes)
    mean, var = (xf.mean(reduce, keepdims=True), xf.var(reduce, keepdims=True)) if training else (mm, mv)
    y = (xf - mean) / np.sqrt(var + eps) * gamma + beta
    return y, mean.reshape(weights[0].shape), var.reshape(weights[0].shape)


BNS = [  # shape, dtype, kwargs, non-negative axes, fused, input scale
    ((4, 3, 4), "float32", {"axis": [1, -1], "momentum": 0.9}, [1, 2], False, 1.0),
    ((3, 2, 4, 5), "float32", {"axis": -3, "momentum": 0.5}, [1], True, 1.0),
    ((3, 4, 4, 2), "float32", {"fused": False, "momentum": 0.7}, [3], False, 1.0),
    ((3, 4, 4, 2), "float16", {"momentum": 0.5}, [3], True, 1.0),
    ((3, 4, 4, 2), "float64", {"momentum": 0.5}, [3], False, 1.0),
    ((2, 3, 2, 2, 3), "float32", {"epsilon": 1e-6}, [4], True, 1e-3),  # fused floors epsilon at 1.001e-5
]


@pytest.mark.parametrize(("shape", "dtype", "kwargs", "axes", "fused", "scale"), BNS,
                         ids=[f"{b[1]}-{b[0]}-{b[2]}" for b in BNS])
def test_batch_normalization_matches_reference(conn: layerserve.Connection, shape: tuple[int, ...], dtype: str,
                                               kwargs: dict[str, Any], axes: list[int], fused: bool,
                                               scale: float) -> None:
    bn = conn.layers.BatchNormalization(**kwargs)
    x = (_rand(shape, dtype) * scale).astype(dtype)
    bn.build([None, *shape[1:]], dtype=dtype)
    pshape = [shape[axes[0]]] if len(axes) == 1 else [d if i in axes else 1 for i, d in enumerate(shape)]
    assert [(v.shape, v.dtype) for v in bn.weights] == [(tuple(pshape), "float32" if dtype == "float16" else dtype)] * 4
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 1.5, pshape), rng.normal(size=pshape), rng.normal(size=pshape) * scale,
               rng.uniform(0.5, 1.5, pshape) * scale**2]
    bn.set_weights(weights)
    weights = bn.get_weights()
    eps = max(kwargs.get("epsilon", 1e-3), 1.001e-5) if fused else kwargs.get("epsilon", 1e-3)
    _close(bn(x), _bn_ref(x, weights, axes, eps, training=False)[0], dtype)
    assert bn.updates == []
    y = bn(x, training=True)
    want, mean, var = _bn_ref(x, weights, axes, eps, training=True)
    assert y.dtype.name == dtype
    _close(y, want, dtype)
    n = x.size // mean.size
    stat_var = var * n / (n - 1) if fused else var
    decay = 1 - kwargs.get("momentum", 0.99)
    updates = bn.get_updates_for(x)
    assert [u.variable.rsplit("/", 1)[1] for u in updates] == ["moving_mean:0", "moving_variance:0"]
    for update, start, stat in zip(updates, weights[2:], (mean, stat_var), strict=True):
        _close(update.value, start - (start - stat) * decay, "float32" if dtype == "float16" else dtype)
    assert bn.get_config()["axis"] == axes
    assert bn.input_spec == layerserve.InputSpec(ndim=len(shape), axes={a: shape[a] for a in axes})


def test_running_updates_composes_and_respects_trainable(conn: layerserve.Connection) -> None:
    bn = conn.layers.BatchNormalization(momentum=0.75)
    x1, x2 = _rand((5, 3), "float32", 1), _rand((5, 3), "float32", 2) + 1
    bn(x1, training=True)
    bn(x2, training=True)
    bn(x2)  # inference: no updates
    assert len(bn.updates) == 4 and len(bn.get_updates_for(x2)) == 2
    decay = np.float32(1 - 0.75)
    mm, mv = np.zeros(3, np.float32), np.ones(3, np.float32)
    for x in (x1, x2):  # TF's AssignSub ops, run one after the other
        mm = mm - (mm - x.mean(0)) * decay
        mv = mv - (mv - x.var(0)) * decay

    bn.trainable = False  # updates are hidden and running them changes nothing
    assert bn.updates == [] and bn.get_updates_for(x1) == []
    bn.run_updates()
    np.testing.assert_array_equal(bn.get_weights()[3], np.ones(3, np.float32))
    bn.trainable = True
    assert len(bn.updates) == 4

    assert sorted(bn.run_updates(x1)) == ["batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"]
    assert len(bn.updates) == 2
    bn.run_updates()
    assert bn.updates == []
    np.testing.assert_allclose(bn.get_weights()[2], mm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bn.get_weights()[3], mv, rtol=1e-6, atol=1e-6)


def test_batch_normalization_errors(conn: layerserve.Connection) -> None:
    bn = conn.layers.BatchNormalization(axis=3)
    with pytest.raises(ValueError, match="Invalid value for `axis` argument"):
        bn(np.zeros((2, 3, 4), np.float32))
    assert not bn.built and bn.variables == []
    for key, value in (("renorm", True), ("virtual_batch_size", 2)):
        with pytest.raises(ValueError, match=key) as info:
            conn.layers.BatchNormalization(**{key: value})
        assert info.value.status == 422  # type: ignore[attr-defined]


def test_functional_batch_normalization_defaults_to_inference(conn: layerserve.Connection) -> None:
    x = _rand((4, 3), "float32")
    y = conn.layers.batch_normalization(x, name="bn")
    _close(y, x / np.sqrt(1 + 1e-3), "float32")
    assert conn.list_layers()[0].updates == []


# ---- Dropout and Flatten ----------------------------------------------------------------
def test_dropout_masks(conn: layerserve.Connection) -> None:
    x = np.ones((20, 50), np.float64)
    seeded = conn.layers.Dropout(0.25, seed=7)
    first = seeded(x, training=True)
    np.testing.assert_array_equal(seeded(x, training=True), first)
    np.testing.assert_array_equal(conn.layers.dropout(x, 0.25, seed=7, training=True), first)
    assert set(np.unique(first)) == {0.0, 1 / 0.75}
    unseeded = conn.layers.Dropout(0.25)
    assert not np.array_equal(unseeded(x, training=True), unseeded(x, training=True))
    np.testing.assert_array_equal(unseeded(x), x)
    np.testing.assert_array_equal(conn.layers.Dropout(0.0)(x, training=True), x)

    y = conn.layers.Dropout(0.5, noise_shape=[None, 1, 6])(np.ones((30, 4, 6), np.float32), training=True)
    assert (y == y[:, :1, :]).all() and 0 < (y == 0).mean() < 1


def test_dropout_errors(conn: layerserve.Connection) -> None:
    with pytest.raises(ValueError, match="rate"):
        conn.layers.Dropout(1.5)
    layer = conn.layers.Dropout(1.0)
    np.testing.assert_array_equal(layer(np.ones((2, 2), np.float32)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="range"):
        layer(np.ones((2, 2), np.float32), training=True)
    with pytest.raises(ValueError, match="Dimensions must be equal, but are 3 and 2"):
        conn.layers.Dropout(0.5, noise_shape=[None, 3])(np.ones((2, 2), np.float32), training=True)


def test_flatten(conn: layerserve.Connection) -> None:
    x = _rand((2, 3, 4, 5), "float64")
    layer = conn.layers.Flatten(data_format="channels_first")
    np.testing.assert_array_equal(layer(x), x.transpose(0, 2, 3, 1).reshape(2, -1))
    assert layer.get_config()["data_format"] == "channels_first"
    assert layer.compute_output_shape([None, 3, 4, 5]) == (None, 60)
    assert layer.compute_output_shape([None, None, 4]) == (None, None)
    np.testing.assert_array_equal(conn.layers.flatten(x[:, 0, 0, 0]), x[:, 0, 0, 0].reshape(2, 1))
    assert conn.layers.Flatten().get_config()["data_format"] == "channels_last"


# ---- standalone export -------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "kwargs", "x"), [
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, _rand((1, 5, 5, 2), "float64")),
    ("MaxPooling1D", {"pool_size": 2, "strides": 2, "data_format": "channels_first"}, _rand((1, 2, 6), "float32")),
    ("BatchNormalization", {"axis": 1}, _rand((1, 3, 4, 4), "float16")),
    ("Dropout", {"rate": 0.5}, _rand((1, 4), "float32")),
    ("Flatten", {}, _rand((1, 2, 3), "float32")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_exported_model_runs_standalone(conn: layerserve.Connection, cls: str, kwargs: dict[str, Any],
                                        x: np.ndarray) -> None:
    layer = getattr(conn.layers, cls)(**kwargs)
    y = layer(x)
    data = httpx.get(f"{conn.url}/v1/graphs/{conn.graph}/layers/{layer.id}/onnx").content
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], y)
