"""TensorFlow's ``tf.compat.v1`` with layerserve's training code in place of TF's: ``tf.train``
(optimizers, global step, schedules) and the clipping functions come from
``client/compat/v1``, running on TF's own ops. Given to the TF1 program runner as a drop-in,
it checks layerserve's update rules, slot variables and names against TensorFlow's recorded
results with nothing else different:

    /tmp/tfref-venv/bin/python tests/tf1/run_programs.py --backend client \\
        --module scripts/tf_with_layerserve_training.py --dir tests/tf1_training --kind training
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as _tensorflow  # (after the environment it reads)

_tf = _tensorflow.compat.v1
_tf.disable_eager_execution()

_SOURCE = Path(__file__).resolve().parents[1] / "client" / "compat" / "v1"


def _package(name: str, path: list[str]) -> None:
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = path
        sys.modules[name] = module


# layerserve's training modules only, without the rest of the client (not installed here)
_package("layerserve", [])
_package("layerserve.compat", [])
_package("layerserve.compat.v1", [str(_SOURCE)])
importlib.import_module("layerserve.compat.v1.surface").use(_tf)

train = importlib.import_module("layerserve.compat.v1.train")
_clip = importlib.import_module("layerserve.compat.v1.clip_ops")
clip_by_global_norm = _clip.clip_by_global_norm
clip_by_norm = _clip.clip_by_norm
global_norm = _clip.global_norm


def __getattr__(name: str) -> Any:
    return getattr(_tf, name)
