"""``tf.train.Saver``: TF1's checkpoints of a session's variables, in TensorFlow's own files.

``save`` reads the variables in one run and writes them through ``layerserve.saver`` (the
prefix, the ``checkpoint`` state file and ``max_to_keep`` as TensorFlow does); ``restore``
reads a checkpoint (ours or TensorFlow's) and assigns every variable of the Saver in one run,
which the server commits at once: all the variables or none. No MetaGraph (``.meta``) is
written: there is no TensorFlow graph to describe (``write_meta_graph`` is accepted, and
ignored). A checkpoint holding a variable in another shape is refused (TensorFlow 2.21's
resource variables would take the checkpoint's shape; a hosted layer's shape is fixed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from layerserve.compat.v1 import errors
from layerserve.compat.v1.graph import Operation, Tensor, name_scope
from layerserve.compat.v1.variables import Variable, assign, global_variables
from layerserve.saver import SaverFiles, checkpoint_exists

__all__ = ["Saver", "list_variables", "load_variable"]

_NOT_FOUND = ("Restoring from checkpoint failed. This is most likely due to a Variable name or other graph key that "
              "is missing from the checkpoint. Please ensure that you have not altered the graph expected based on "
              "the checkpoint. Original error:\n\nKey {key} not found in checkpoint")


def _by_key(var_list: Any) -> dict[str, Variable]:
    """Checkpoint key -> variable: a dict as given, a list by the variables' op names."""
    if isinstance(var_list, Mapping):
        return dict(var_list)
    out: dict[str, Variable] = {}
    for var in var_list:
        key = var.name[:-2] if var.name.endswith(":0") else var.name
        if key in out:
            raise ValueError(f"At least two variables have the same name: {key}")
        out[key] = var
    return out


class Saver:
    """TF1's ``tf.compat.v1.train.Saver`` (``var_list`` None: every global variable now)."""

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False, max_to_keep: int | None = 5,
                 keep_checkpoint_every_n_hours: float = 10000.0, name: str | None = None,
                 restore_sequentially: bool = False, saver_def: Any = None, builder: Any = None,
                 defer_build: bool = False, allow_empty: bool = False, write_version: int = 2,
                 pad_step_number: bool = False, save_relative_paths: bool = False, filename: str | None = None) -> None:
        self._vars = _by_key(global_variables() if var_list is None else var_list)
        if not self._vars and not allow_empty:
            raise ValueError("No variables to save")
        self._files = SaverFiles(max_to_keep)
        self._restore_op: Operation | None = None
        self._feeds: dict[str, Tensor] = {}

    @property
    def last_checkpoints(self) -> list[str]:
        return list(self._files.last_checkpoints)

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        self._files.last_checkpoints = [p for p in checkpoint_paths if checkpoint_exists(p)]

    def save(self, sess: Any, save_path: str | os.PathLike[str], global_step: Any = None,
             latest_filename: str | None = None, meta_graph_suffix: str = "meta", write_meta_graph: bool = True,
             write_state: bool = True, strip_default_attrs: bool = False, save_debug_info: bool = False) -> str:
        """Write every variable of the Saver; returns the prefix (``save_path-<global_step>``)."""
        keys = sorted(self._vars)
        values = sess.run([self._vars[k] for k in keys])
        step = None
        if global_step is not None:
            step = int(global_step if isinstance(global_step, (int, np.integer)) else sess.run(global_step))
        return self._files.save(dict(zip(keys, values)), save_path, step, latest_filename, write_state=write_state)

    def restore(self, sess: Any, save_path: str | os.PathLike[str] | None) -> None:
        """Assign every variable of the Saver from the checkpoint, in one run (all or none)."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        values = self._files.restore(save_path)
        feeds = {}
        for key, var in self._vars.items():
            value = values.get(key)
            if value is None:
                raise errors.NotFoundError(None, None, _NOT_FOUND.format(key=key))
            if tuple(value.shape) != tuple(var.shape.as_list()):
                raise errors.InvalidArgumentError(
                    None, None, f"Restoring from checkpoint failed: variable {var.name} has shape "
                    f"{var.shape.as_list()} and the checkpoint holds shape {list(value.shape)}")
            feeds[self._placeholder(sess, key)] = value.astype(var.dtype.as_numpy_dtype, copy=False)
        sess.run(self._restore_op, feed_dict=feeds)

    def _placeholder(self, sess: Any, key: str) -> Tensor:
        """The feed of ``key``'s restore assignment; the assignments are built at the first restore."""
        if self._restore_op is None:
            self._build_restore(sess.graph)
        return self._feeds[key]

    def _build_restore(self, graph: Any) -> None:
        from layerserve.compat.v1 import group, placeholder

        with graph.as_default(), name_scope("save"):
            assigns = []
            for key, var in sorted(self._vars.items()):
                self._feeds[key] = placeholder(var.dtype, var.shape.as_list(), name="restore_value")
                assigns.append(assign(var, self._feeds[key]))
            self._restore_op = group(*assigns, name="restore_all")


def list_variables(ckpt_dir_or_file: str | os.PathLike[str]) -> list[tuple[str, list[int]]]:
    """``tf.train.list_variables``: (name, shape) of every tensor, sorted by name."""
    from layerserve.saver import load_checkpoint

    reader = load_checkpoint(ckpt_dir_or_file)
    return sorted(reader.get_variable_to_shape_map().items())


def load_variable(ckpt_dir_or_file: str | os.PathLike[str], name: str) -> np.ndarray:
    """``tf.train.load_variable``: one tensor's value (a trailing ``:0`` is dropped)."""
    from layerserve.saver import load_checkpoint

    return load_checkpoint(ckpt_dir_or_file).get_tensor(name[:-2] if name.endswith(":0") else name)

