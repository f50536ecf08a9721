"""``tf.train``: optimizers, the global step, learning-rate schedules, the Saver and the checkpoint helpers."""

from __future__ import annotations

from typing import Any

from layerserve.compat.v1.learning_rate_decay import (
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    natural_exp_decay,
    piecewise_constant,
    polynomial_decay,
)
from layerserve.compat.v1.optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    Optimizer,
    RMSPropOptimizer,
)
from layerserve.compat.v1.saver import Saver, list_variables, load_variable
from layerserve.compat.v1.surface import tf
from layerserve.saver import (
    CheckpointState,
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
    load_checkpoint,
    update_checkpoint_state,
)

__all__ = [
    "AdagradOptimizer", "AdamOptimizer", "CheckpointState", "GradientDescentOptimizer", "MomentumOptimizer",
    "Optimizer", "RMSPropOptimizer", "Saver", "checkpoint_exists", "cosine_decay", "create_global_step",
    "exponential_decay", "get_checkpoint_state", "get_global_step", "get_or_create_global_step",
    "inverse_time_decay", "latest_checkpoint", "list_variables", "load_checkpoint", "load_variable",
    "natural_exp_decay", "piecewise_constant", "polynomial_decay", "update_checkpoint_state",
]


def get_global_step(graph: Any = None) -> Any:
    """The variable in the GLOBAL_STEP collection (or named ``global_step``), else None."""
    ops = tf()
    g = graph or ops.get_default_graph()
    found = g.get_collection(ops.GraphKeys.GLOBAL_STEP)
    if len(found) == 1:
        return found[0]
    if found:
        return None  # TF logs "Multiple tensors in global_step collection." and gives None
    named = [v for v in ops.global_variables() if v.name == "global_step:0"]
    return named[0] if named else None


def create_global_step(graph: Any = None) -> Any:
    """An int64 scalar variable ``global_step`` starting at 0, in GLOBAL_VARIABLES and GLOBAL_STEP."""
    ops = tf()
    if get_global_step(graph) is not None:
        raise ValueError('"global_step" already exists.')
    with ops.variable_scope(ops.VariableScope(False, name="")):
        return ops.get_variable(ops.GraphKeys.GLOBAL_STEP, shape=[], dtype=ops.int64,
                                initializer=ops.zeros_initializer(), trainable=False,
                                collections=[ops.GraphKeys.GLOBAL_VARIABLES, ops.GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Any = None) -> Any:
    step = get_global_step(graph)
    return create_global_step(graph) if step is None else step
