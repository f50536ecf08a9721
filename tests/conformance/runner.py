"""Runs one TensorFlow reference case (see FORMAT.md) through a real server and the client.

Cases are discovered at run time from every case directory: the copy in this repository, the
extra cases recorded by ``generate.py`` (``extra/``), the shared folder beside the checkout when
it exists, and ``LAYERSERVE_CONFORMANCE_DIRS``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import layerserve

__all__ = ["EXTRA", "HERE", "SHARED", "Case", "case_dirs", "discover_cases", "run_case", "run_functional"]

HERE = Path(__file__).resolve().parent
EXTRA = HERE / "extra"
SHARED = HERE.parent.parent.parent / "shared" / "conformance"
CONFIG_FLOAT_KEYS = ("l1", "l2", "momentum", "epsilon", "rate")
# float16: two units in the last place (ONNX Runtime and TF sum in another order); float32 as
# TF's layer tests (1e-5); float64 as the recorded cases.
DTYPE_TOLERANCE = {"float16": {"rtol": 2e-3, "atol": 2e-3}, "float32": {"rtol": 1e-5, "atol": 1e-5},
                   "float64": {"rtol": 1e-7, "atol": 1e-7}}


@dataclass
class Case:
    id: str
    directory: Path
    data: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @classmethod
    def load(cls, directory: Path) -> Case:
        data = json.loads((directory / "case.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(data["id"], directory, data, arrays)

    def input(self, index: int) -> np.ndarray:
        return self.arrays[self.data["inputs"][index]["array"]]

    @property
    def tol(self) -> dict[str, float]:
        """TF's test tolerance for the case's dtype (its ``assertAllClose`` defaults, tightened
        to what ONNX Runtime's kernels reach), never looser than the case's own."""
        dtype = str(self.data.get("input_dtype") or self.input(0).dtype.name)
        tight = DTYPE_TOLERANCE.get(dtype, dict(self.data["tolerance"]))
        return {k: min(v, self.data["tolerance"][k]) for k, v in tight.items()}


def case_dirs(root: Path) -> list[Path]:
    index = root / "cases" / "index.json"
    if not index.is_file():
        return []
    return [root / "cases" / c["dir"] for c in json.loads(index.read_text())["cases"]]


def discover_cases() -> list[tuple[str, Path]]:
    """(test id, case directory); a shared case identical to the repository's copy runs once."""
    roots = [HERE, EXTRA, SHARED, *(Path(p) for p in os.environ.get("LAYERSERVE_CONFORMANCE_DIRS", "").split(":") if p)]
    seen: dict[str, str] = {}
    found = []
    for root in roots:
        for directory in case_dirs(root):
            digest = hashlib.sha256((directory / "case.json").read_bytes()).hexdigest()
            if seen.get(directory.name) == digest:
                continue
            label = directory.name if directory.name not in seen else f"{directory.name}@{root.name}"
            seen.setdefault(directory.name, digest)
            found.append((label, directory))
    return found


def _close(actual: Any, expected: Any, tol: dict[str, float], what: str) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=tol["rtol"], atol=tol["atol"], err_msg=what)


def _close_relatively(actual: Any, expected: Any, tol: dict[str, float], what: str) -> None:
    """Losses: sums whose size varies by orders of magnitude, so compared relatively only."""
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=tol["rtol"], atol=0, err_msg=what)


def _normalize_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize_config(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def _make_layer(conn: layerserve.Connection, case: Case) -> layerserve.Layer:
    cls = getattr(conn.layers, case.data["class"])
    return cls(**case.data["kwargs"])  # type: ignore[no-any-return]


def _apply(layer: Any, x: np.ndarray, training: bool | None) -> np.ndarray:
    return layer.apply(x) if training is None else layer.apply(x, training=training)  # type: ignore[no-any-return]


def _check_dropout(y: np.ndarray, x: np.ndarray, stats: dict[str, Any]) -> None:
    rate = stats["rate"]
    kept = y != 0
    zero_fraction = 1.0 - kept.mean()
    n_units = stats["n_mask_units"]
    sigma = (rate * (1 - rate) / n_units) ** 0.5
    assert abs(zero_fraction - rate) <= 5 * sigma + 1e-9, (zero_fraction, rate)
    scale = y[kept] / x[kept]
    np.testing.assert_allclose(scale, stats["expected_scale"], rtol=1e-3)


def _check_applies(layer: Any, case: Case) -> list[np.ndarray]:
    outputs = []
    for k, apply in enumerate(case.data["applies"]):
        x = case.input(apply["input"])
        y = _apply(layer, x, apply["training"])
        assert list(y.shape) == apply["output_shape"], (k, y.shape)
        assert y.dtype.name == apply["output_dtype"], (k, y.dtype)
        if apply["stochastic"]:
            _check_dropout(y, x, apply["dropout_stats"])
        else:
            _close(y, case.arrays[apply["output"]], case.tol, f"apply {k} output")
        expected_shape = [None if d is None else d for d in apply["compute_output_shape"]]
        assert list(layer.compute_output_shape([None, *x.shape[1:]])) == expected_shape
        outputs.append(y)
    return outputs


def _check_state(layer: Any, case: Case) -> None:
    want = case.data["layer"]
    assert layer.name == want["name"]
    assert layer.scope_name == want["scope_name"]
    assert layer.dtype == want["dtype"]
    assert layer.built is want["built"]
    assert layer.trainable is want["trainable"]
    for key in ("variables", "trainable_variables", "non_trainable_variables", "weights"):
        assert [v.name for v in getattr(layer, key)] == want[key], key
    assert layer.count_params() == want["count_params"]
    spec = layer.input_spec
    assert (None if spec is None else _spec_json(spec)) == want["input_spec"]
    assert _normalize_config(layer.get_config()) == _normalize_config(want["config"])


def _spec_json(spec: layerserve.InputSpec) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(spec, k) for k in ("ndim", "min_ndim", "max_ndim", "dtype")
                           if getattr(spec, k) is not None}
    if spec.shape is not None:
        out["shape"] = list(spec.shape)
    if spec.axes:
        out["axes"] = {str(k): v for k, v in spec.axes.items()}
    return out


def _check_losses(layer: Any, case: Case) -> None:
    tol = case.tol
    losses = layer.losses
    assert len(losses) == len(case.data["losses"])
    for got, want in zip(losses, case.data["losses"]):
        _close_relatively(got, want["value"], tol, f"loss {want}")
    for key, want in case.data["get_losses_for"].items():
        got = layer.get_losses_for(None if key == "None" else case.input(int(key)))
        assert len(got) == len(want), key
        for g, w in zip(got, want):
            _close_relatively(g, w["value"], tol, f"get_losses_for({key})")


def _check_updates(layer: Any, case: Case) -> None:
    assert len(layer.updates) == case.data["n_updates"]
    for key, want in case.data["get_updates_for"].items():
        got = layer.get_updates_for(None if key == "None" else case.input(int(key)))
        if key == "None":
            assert [u.variable for u in got] == want
            continue
        assert [u.variable for u in got] == [w["variable"] for w in want], key
        expected = [(w["apply"], w["variable"]) for w in want]
        for update, (apply_index, variable) in zip(got, expected):
            recorded = {u["variable"]: u for u in case.data["applies"][apply_index]["updates"]}
            _close(update.value, case.arrays[recorded[variable]["array"]], case.tol, f"update {variable}")


def _check_flip(layer: Any, case: Case) -> None:
    flip = case.data.get("after_trainable_flip")
    if not flip:
        return
    layer.trainable = not layer.trainable
    assert layer.trainable is flip["trainable"]
    for key in ("trainable_variables", "non_trainable_variables", "weights"):
        assert [v.name for v in getattr(layer, key)] == flip[key], key
    assert len(layer.updates) == flip["n_updates"]
    for key, count in flip["get_updates_for"].items():
        assert len(layer.get_updates_for(case.input(int(key)))) == count
    assert len(layer.losses) == flip["n_losses"]


def _set_given_weights(layer: Any, case: Case) -> None:
    weights = case.data["weights"]
    if not weights:
        return
    first = case.input(0)
    layer.build(list(first.shape), dtype=first.dtype)  # the full shape: BatchNormalization may use axis 0
    layer.set_weights([case.arrays[w["array"]] for w in weights])


def run_case(conn: layerserve.Connection, case: Case) -> None:
    layer = _make_layer(conn, case)
    assert layer.name == case.data["layer_name_at_construction"]
    _set_given_weights(layer, case)
    _check_applies(layer, case)
    _check_state(layer, case)
    _check_losses(layer, case)
    _check_updates(layer, case)
    _check_flip(layer, case)


def run_functional(conn: layerserve.Connection, case: Case) -> None:
    """The functional form gives the class's outputs (weights set through a shared scope)."""
    kwargs = dict(case.data["kwargs"])
    kwargs.pop("name", None)
    fn = getattr(conn.layers, case.data["functional"])
    if not case.data["functional_accepts_kwargs"]:  # keep what the form takes (its signature is TF's)
        taken = inspect.signature(fn).parameters
        if "dtype" in kwargs and "dtype" not in taken:
            # TF's form has no dtype: it cannot make this layer, and says so as TF does
            with pytest.raises(TypeError):
                fn(case.input(0), **kwargs)
            return
        kwargs = {k: v for k, v in kwargs.items() if k in taken}
    assert case.data["applies"], f"case {case.id} has no apply to check"
    if case.data["weights"]:
        fn(case.input(0), name="fn", **kwargs)
        handle = next(layer for layer in conn.list_layers() if layer.name == "fn")
        handle.set_weights([case.arrays[w["array"]] for w in case.data["weights"]])
        kwargs.update(name="fn", reuse=True)
    for apply in case.data["applies"]:
        extra = {} if apply["training"] is None else {"training": apply["training"]}
        x = case.input(apply["input"])
        y = fn(x, **kwargs, **extra)
        assert list(y.shape) == apply["output_shape"] and y.dtype.name == apply["output_dtype"]
        if apply["stochastic"]:
            _check_dropout(y, x, apply["dropout_stats"])
        else:
            _close(y, case.arrays[apply["output"]], case.tol, "functional output")
