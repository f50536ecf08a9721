"""Writes reference cases (FORMAT.md layout) by running real TensorFlow in graph mode.

Not part of the test suite: it needs TensorFlow 2.21 with tf-keras (layer-api.md §0), e.g.

    TF_USE_LEGACY_KERAS=1 /path/to/tf-venv/bin/python -m tests.conformance.generate tests/conformance/extra

Every case is a plain description (class, kwargs, input shapes, applies); TensorFlow decides
every recorded value. The case list lives in ``extra_cases.py`` and the naming sequence in
``extra_naming.py``, both beside this file.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf
import tf_keras

from tests.conformance.extra_cases import CASES, FUNCTIONAL, TOLERANCE, CaseSpec
from tests.conformance.extra_naming import STEPS

__all__ = ["main"]

SEED = 20240917
V1 = tf.compat.v1
REGULARIZER_VARIABLES = {
    "kernel_regularizer": "kernel", "bias_regularizer": "bias", "depthwise_regularizer": "depthwise_kernel",
    "pointwise_regularizer": "pointwise_kernel", "gamma_regularizer": "gamma", "beta_regularizer": "beta",
}


def tf_regularizer(value: dict[str, float] | str | None) -> Any:
    if value is None or isinstance(value, str):
        return value
    regs = tf_keras.regularizers
    if set(value) == {"l1"}:
        return regs.L1(value["l1"])
    if set(value) == {"l2"}:
        return regs.L2(value["l2"])
    return regs.L1L2(l1=value.get("l1", 0.0), l2=value.get("l2", 0.0))


def tf_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key.endswith("_regularizer"):
            out[key] = tf_regularizer(value)
        elif isinstance(value, list) and key != "axis":
            out[key] = tuple(value)
    return out


def plain(value: Any) -> Any:
    """get_config output and friends as plain JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tf.DType):
        return value.name
    if isinstance(value, tf.TensorShape):
        return value.as_list()
    return value


def spec_json(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    out: dict[str, Any] = {}
    for key in ("ndim", "min_ndim", "max_ndim"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    if spec.axes:
        out["axes"] = {str(k): v for k, v in spec.axes.items()}
    if spec.dtype is not None:
        out["dtype"] = spec.dtype
    if spec.shape is not None:
        out["shape"] = list(spec.shape)
    return out


def make_inputs(spec: CaseSpec, rng: np.random.Generator) -> list[np.ndarray]:
    return [(rng.standard_normal(shape) * spec.input_scale).astype(spec.dtype) for shape in spec.shapes]


def make_weight(name: str, shape: list[int], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if name in ("moving_variance", "gamma"):
        return rng.uniform(0.5, 1.5, shape).astype(dtype)
    return (rng.standard_normal(shape) * 0.5).astype(dtype)


class Recorder:
    """Builds one case in a fresh graph and records what TensorFlow reports."""

    def __init__(self, spec: CaseSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.arrays: dict[str, np.ndarray] = {}
        self.graph = tf.Graph()

    def run(self) -> dict[str, Any]:
        with self.graph.as_default():
            V1.set_random_seed(SEED)
            cls = getattr(V1.layers, self.spec.cls)
            self.layer = cls(**tf_kwargs(self.spec.kwargs))
            name_at_construction = self.layer.name
            self.inputs = make_inputs(self.spec, self.rng)
            self.placeholders = [V1.placeholder(self.spec.dtype, x.shape, name=f"input_{i}")
                                 for i, x in enumerate(self.inputs)]
            self.apply_all()
            with V1.Session(graph=self.graph) as self.sess:
                self.sess.run(V1.global_variables_initializer())
                self.weights = self.given_weights()
                return self.describe(name_at_construction)

    # ---- graph construction ------------------------------------------------------------
    def apply_all(self) -> None:
        self.outputs, self.apply_losses, self.apply_updates = [], [], []
        for index, training in self.spec.applies:
            n_cond = self.n_conditional()
            before = list(self.layer.updates)
            x = self.placeholders[index]
            y = self.layer(x) if training is None else self.layer(x, training=training)
            self.outputs.append(y)
            self.apply_losses.append([t.name for t in self.layer.losses[n_cond:self.n_conditional()]])
            self.apply_updates.append([u for u in self.layer.updates if not any(u is b for b in before)])

    def n_conditional(self) -> int:
        return len(self.layer.losses) - len(self.layer.get_losses_for(None))

    def given_weights(self) -> list[tuple[Any, np.ndarray]]:
        pairs = []
        for variable in self.layer.weights:
            short = variable.name.rsplit("/", 1)[-1].split(":")[0]
            pairs.append((variable, make_weight(short, variable.shape.as_list(), variable.dtype.base_dtype.name,
                                                self.rng)))
        self.load_weights(pairs)
        return pairs

    def load_weights(self, pairs: list[tuple[Any, np.ndarray]]) -> None:
        for variable, value in pairs:
            variable.load(value, self.sess)

    def feed(self) -> dict[Any, np.ndarray]:
        return dict(zip(self.placeholders, self.inputs, strict=True))

    # ---- recording -------------------------------------------------------------------
    def describe(self, name_at_construction: str) -> dict[str, Any]:
        for i, x in enumerate(self.inputs):
            self.arrays[f"input_{i}"] = x
        weights = []
        for j, (variable, value) in enumerate(self.weights):
            self.arrays[f"weight_{j}"] = value
            weights.append({"name": variable.name, "short_name": variable.name.rsplit("/", 1)[-1].split(":")[0],
                            "shape": list(value.shape), "dtype": value.dtype.name,
                            "trainable": any(variable is t for t in self.layer.trainable_weights),
                            "array": f"weight_{j}"})
        update_index = self.record_updates()
        applies = [self.describe_apply(k, update_index) for k in range(len(self.spec.applies))]
        losses, losses_for = self.describe_losses()
        case = {
            "format_version": 1, "id": self.spec.id, "set": "extra", "class": self.spec.cls,
            "functional": FUNCTIONAL[self.spec.cls], "functional_accepts_kwargs": self.functional_accepts(),
            "kwargs": self.spec.kwargs, "input_dtype": self.spec.dtype, "tolerance": TOLERANCE[self.spec.dtype],
            "description": self.spec.description, "layer_name_at_construction": name_at_construction,
            "inputs": [{"array": f"input_{i}", "shape": list(x.shape), "dtype": x.dtype.name}
                       for i, x in enumerate(self.inputs)],
            "weights": weights, "layer": self.describe_layer(), "applies": applies, "losses": losses,
            "get_losses_for": losses_for, "get_updates_for": self.describe_updates_for(update_index),
            "n_updates": len(self.layer.updates),
        }
        if self.layer.weights:
            case["after_trainable_flip"] = self.describe_flip()
        return case

    def functional_accepts(self) -> bool:
        """Whether the functional form's signature takes every kwarg of the case."""
        params = inspect.signature(getattr(V1.layers, FUNCTIONAL[self.spec.cls])).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return True
        return all(k in params for k in self.spec.kwargs)

    def describe_layer(self) -> dict[str, Any]:
        layer = self.layer
        out = {
            "name": layer.name, "scope_name": layer.scope_name, "dtype": layer.dtype, "built": bool(layer.built),
            "trainable": bool(layer.trainable),
            "variables": [v.name for v in layer.variables],
            "trainable_variables": [v.name for v in layer.trainable_variables],
            "non_trainable_variables": [v.name for v in layer.non_trainable_variables],
            "weights": [v.name for v in layer.weights], "count_params": int(layer.count_params()),
            "input_spec": spec_json(layer.input_spec), "config": plain(layer.get_config()),
        }
        if self.spec.cls == "BatchNormalization":
            out["tf_internal"] = {"fused": bool(layer.fused), "axis_after_build": plain(layer.axis)}
        return out

    def record_updates(self) -> dict[int, tuple[int, str]]:
        """id(update op) -> (apply, variable); each value from the given weights alone."""
        index: dict[int, tuple[int, str]] = {}
        self.update_values: list[list[tuple[str, np.ndarray]]] = []
        for k, ops in enumerate(self.apply_updates):
            values = []
            for op in ops:
                self.load_weights(self.weights)
                before = {v.name: self.sess.run(v) for v in self.layer.variables}
                self.sess.run(op, feed_dict=self.feed())
                after = {v.name: self.sess.run(v) for v in self.layer.variables}
                name = self.target_of(op, before, after)
                index[id(op)] = (k, name)
                values.append((name, after[name]))
            self.update_values.append(values)
        self.load_weights(self.weights)
        return index

    def target_of(self, op: Any, before: dict[str, Any], after: dict[str, Any]) -> str:
        graph_op = op if isinstance(op, tf.Operation) else op.op
        handle = graph_op.inputs[0] if graph_op.inputs else None
        for variable in self.layer.variables:
            if handle is not None and handle is variable.handle:
                return str(variable.name)
        changed = [n for n in before if not np.array_equal(before[n], after[n])]
        assert len(changed) == 1, (graph_op.type, changed)
        return changed[0]

    def describe_apply(self, k: int, update_index: dict[int, tuple[int, str]]) -> dict[str, Any]:
        index, training = self.spec.applies[k]
        x, y = self.inputs[index], self.outputs[k]
        value = self.sess.run(y, feed_dict=self.feed())
        stochastic = self.spec.cls == "Dropout" and training is True and self.spec.kwargs.get("rate", 0.5) > 0
        shape = tf.TensorShape([None, *x.shape[1:]])
        out: dict[str, Any] = {
            "input": index, "training": training, "output_shape": list(value.shape),
            "output_dtype": value.dtype.name, "static_output_shape": y.shape.as_list(),
            "compute_output_shape": tf.TensorShape(self.layer.compute_output_shape(shape)).as_list(),
            "stochastic": stochastic,
        }
        if stochastic:
            out["dropout_stats"] = dropout_stats(x, value, self.spec.kwargs)
        else:
            out["output"] = f"output_{k}"
            self.arrays[f"output_{k}"] = value
        names = self.apply_losses[k]
        out["conditional_losses"] = [float(v) for v in self.sess.run(names, feed_dict=self.feed())]
        out["updates"] = []
        for j, (variable, array) in enumerate(self.update_values[k]):
            self.arrays[f"update_{k}_{j}"] = array
            out["updates"].append({"variable": variable, "array": f"update_{k}_{j}", "shape": list(array.shape),
                                   "dtype": array.dtype.name})
        return out

    def weight_loss_variables(self) -> list[str]:
        regularized = {REGULARIZER_VARIABLES[k] for k, v in self.spec.kwargs.items()
                       if k in REGULARIZER_VARIABLES and v is not None}
        names = [v.name for v in self.layer.variables]
        return [n for n in names if n.rsplit("/", 1)[-1].split(":")[0] in regularized]

    def describe_losses(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        apply_of = {name: k for k, names in enumerate(self.apply_losses) for name in names}
        losses = self.layer.losses
        values = self.sess.run(losses, feed_dict=self.feed())
        weight_vars = iter(self.weight_loss_variables())
        out = []
        for tensor, value in zip(losses, values, strict=True):
            if tensor.name in apply_of:
                out.append({"kind": "activity", "apply": apply_of[tensor.name], "value": float(value)})
            else:
                out.append({"kind": "weight", "variable": next(weight_vars), "value": float(value)})
        unconditional = self.sess.run(self.layer.get_losses_for(None))
        losses_for: dict[str, Any] = {"None": [{"variable": v, "value": float(x)} for v, x in
                                               zip(self.weight_loss_variables(), unconditional, strict=True)]}
        for i, ph in enumerate(self.placeholders):
            tensors = self.layer.get_losses_for(ph)
            vals = self.sess.run(tensors, feed_dict=self.feed())
            losses_for[str(i)] = [{"apply": apply_of[t.name], "value": float(v)} for t, v in zip(tensors, vals,
                                                                                                   strict=True)]
        return out, losses_for

    def describe_updates_for(self, index: dict[int, tuple[int, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {"None": [index[id(u)][1] for u in self.layer.get_updates_for(None)]}
        for i, ph in enumerate(self.placeholders):
            out[str(i)] = [{"apply": index[id(u)][0], "variable": index[id(u)][1]}
                           for u in self.layer.get_updates_for(ph)]
        return out

    def describe_flip(self) -> dict[str, Any]:
        layer = self.layer
        layer.trainable = not layer.trainable
        return {
            "trainable": bool(layer.trainable),
            "trainable_variables": [v.name for v in layer.trainable_variables],
            "non_trainable_variables": [v.name for v in layer.non_trainable_variables],
            "weights": [v.name for v in layer.weights], "n_updates": len(layer.updates),
            "get_updates_for": {str(i): len(layer.get_updates_for(ph)) for i, ph in enumerate(self.placeholders)},
            "n_losses": len(layer.losses),
        }


def dropout_stats(x: np.ndarray, y: np.ndarray, kwargs: dict[str, Any]) -> dict[str, Any]:
    rate = kwargs.get("rate", 0.5)
    noise = kwargs.get("noise_shape")
    mask_shape = list(x.shape) if noise is None else [x.shape[i] if d is None else d for i, d in enumerate(noise)]
    kept = y != 0
    scale = (y[kept].astype(np.float64) / x[kept].astype(np.float64)) if kept.any() else np.array([np.nan])
    stats = {"rate": rate, "zero_fraction": float(1.0 - kept.mean()), "kept_scale_min": float(scale.min()),
             "kept_scale_max": float(scale.max()), "expected_scale": 1.0 / (1.0 - rate),
             "n_mask_units": int(np.prod(mask_shape)), "n_elements": int(x.size)}
    if noise is not None:
        axes = [i for i, d in enumerate(mask_shape) if d == 1 and x.shape[i] > 1]
        stats["mask_constant_along_axes"] = axes
        stats["mask_constant_ok"] = bool(all((kept == kept.take([0], axis=a)).all() for a in axes))
    return stats


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed timestamps, so unchanged data gives unchanged bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_case(root: Path, case: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    directory = root / "cases" / case["id"]
    directory.mkdir(parents=True)
    (directory / "case.json").write_text(json.dumps(case, separators=(",", ":")) + "\n")
    write_npz(directory / "arrays.npz", arrays)


def generate_cases(root: Path) -> list[dict[str, Any]]:
    entries = []
    for spec in CASES:  # a generator per case: adding a case leaves the others' data as it was
        recorder = Recorder(spec, np.random.default_rng([SEED, zlib.crc32(spec.id.encode())]))
        try:
            case = recorder.run()
        except Exception as error:  # a combination TF cannot run on CPU: leave it out, say so
            print(f"skipped {spec.id}: {type(error).__name__}: {str(error).splitlines()[0][:160]}", file=sys.stderr)
            continue
        write_case(root, case, recorder.arrays)
        entries.append({"id": spec.id, "class": spec.cls, "dir": spec.id, "input_dtype": spec.dtype})
    return entries


def naming_sequence() -> dict[str, Any]:
    """Runs ``STEPS`` in one fresh graph, recording results or errors."""
    graph = tf.Graph()
    refs: dict[str, Any] = {}
    steps = []
    with graph.as_default():
        for step in STEPS:
            record = dict(step)
            try:
                record["result"] = naming_step(refs, step)
            except Exception as error:
                record["error"] = {"type": type(error).__name__, "message": str(error)}
            steps.append(record)
        names = [v.name for v in V1.global_variables()]
    return {"steps": steps, "global_variables_at_end": names}


def naming_step(refs: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    if step["op"] == "new":
        refs[step["ref"]] = getattr(V1.layers, step["class"])(**tf_kwargs(step["kwargs"]))
        return {"name": refs[step["ref"]].name}
    # None is fed as 2, as tests/test_naming.py feeds it, so error messages quote the same shapes
    x = V1.placeholder(tf.float32, [2 if d is None else d for d in step["input_shape"]])
    if step["op"] == "call":
        layer = refs[step["ref"]]
        layer(x, **({"training": step["training"]} if "training" in step else {}))
        return {"name": layer.name, "scope_name": layer.scope_name, "variables": [v.name for v in layer.variables]}
    before = {v.name for v in V1.global_variables()}
    getattr(V1.layers, step["fn"])(x, **tf_kwargs(step["kwargs"]))
    return {"new_variables": [v.name for v in V1.global_variables() if v.name not in before]}


def main(argv: list[str]) -> None:
    V1.disable_eager_execution()
    root = Path(argv[0] if argv else Path(__file__).resolve().parent / "extra")
    shutil.rmtree(root / "cases", ignore_errors=True)
    entries = generate_cases(root)
    index = {"format_version": 1, "seed": SEED, "generator": "tests/conformance/generate.py",
             "tensorflow": tf.__version__, "cases": entries}
    (root / "cases" / "index.json").write_text(json.dumps(index, separators=(",", ":")) + "\n")
    (root / "naming_extra.json").write_text(json.dumps(naming_sequence(), separators=(",", ":")) + "\n")
    print(f"{len(entries)} cases, {len(STEPS)} naming steps -> {root}")


if __name__ == "__main__":
    main(sys.argv[1:])
