"""``tf.train``: the Saver and the checkpoint helpers."""

from __future__ import annotations

from layerserve.compat.v1.saver import Saver, list_variables, load_variable
from layerserve.saver import (
    CheckpointState,
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
    load_checkpoint,
    update_checkpoint_state,
)

__all__ = ["CheckpointState", "Saver", "checkpoint_exists", "get_checkpoint_state", "latest_checkpoint",
           "list_variables", "load_checkpoint", "load_variable", "update_checkpoint_state"]
