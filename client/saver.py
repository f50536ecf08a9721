"""The file side of TF1's ``tf.train.Saver``, on top of ``layerserve.checkpoint``: the prefixes
``save`` returns, the ``checkpoint`` state file, ``max_to_keep`` bookkeeping, ``latest_checkpoint``
and ``load_checkpoint``. A ``Saver`` bound to a session reads and assigns the variables; this
module only turns a mapping of variable name -> array into TensorFlow's files and back.

As TensorFlow 2.21 does (spec tf1-graph-mode.md, "Saver"):

* ``save(values, "DIR/model", global_step=3)`` writes ``DIR/model-3.index`` and
  ``.data-00000-of-00001`` and returns ``DIR/model-3``; without ``global_step``, ``DIR/model``.
* ``max_to_keep`` counts every save of this object, whatever its prefix; saving a prefix again
  moves it to the newest place. Older ones are deleted (their ``.index``, ``.data-*`` and a
  ``.meta`` if there is one). ``None`` or 0 keeps everything.
* The state file ``DIR/checkpoint`` is text: ``model_checkpoint_path: "..."`` then one
  ``all_model_checkpoint_paths: "..."`` per kept prefix, each as given when absolute, else
  relative to ``DIR``; ``latest_checkpoint(DIR)`` gives the newest as a path (``DIR`` joined).

No MetaGraph (``.meta``) is written: there is no TensorFlow graph to describe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerserve.checkpoint import DATA_SUFFIX, INDEX_SUFFIX, read_checkpoint, read_index, write_checkpoint

__all__ = [
    "CheckpointReader",
    "CheckpointState",
    "SaverFiles",
    "checkpoint_exists",
    "get_checkpoint_state",
    "latest_checkpoint",
    "load_checkpoint",
    "update_checkpoint_state",
]

STATE_FILE = "checkpoint"
_LINE = re.compile(r'^\s*(model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass
class CheckpointState:
    """What the state file says (TensorFlow's ``CheckpointState`` message)."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: list[str] = field(default_factory=list)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def checkpoint_exists(prefix: str | os.PathLike[str]) -> bool:
    """Whether ``prefix`` names a checkpoint (its index file exists)."""
    return Path(str(prefix) + INDEX_SUFFIX).is_file()


def _relative(directory: str, path: str) -> str:
    """As TensorFlow records a path: unchanged when absolute, else relative to the state file."""
    return path if os.path.isabs(path) else os.path.relpath(path, directory or ".")


def update_checkpoint_state(directory: str | os.PathLike[str], model_checkpoint_path: str,
                            all_model_checkpoint_paths: list[str] | None = None,
                            latest_filename: str | None = None) -> None:
    """Write the state file (whole, through a temporary file and a rename)."""
    directory = os.fspath(directory)
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    lines = [f'model_checkpoint_path: "{_quote(_relative(directory, model_checkpoint_path))}"']
    lines += [f'all_model_checkpoint_paths: "{_quote(_relative(directory, p))}"' for p in paths]
    target = Path(directory or ".") / (latest_filename or STATE_FILE)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, target)


def get_checkpoint_state(checkpoint_dir: str | os.PathLike[str],
                         latest_filename: str | None = None) -> CheckpointState | None:
    """The state file's content, relative paths joined to ``checkpoint_dir``; None without one."""
    directory = os.fspath(checkpoint_dir)
    try:
        text = (Path(directory) / (latest_filename or STATE_FILE)).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    model, every = None, []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        path = _unquote(match.group(2))
        path = path if os.path.isabs(path) else os.path.join(directory, path)
        if match.group(1) == "model_checkpoint_path":
            model = path
        else:
            every.append(path)
    if model is None:
        raise ValueError(f"Invalid checkpoint state loaded from {directory}")
    return CheckpointState(model, every)


def latest_checkpoint(checkpoint_dir: str | os.PathLike[str], latest_filename: str | None = None) -> str | None:
    """The newest checkpoint's prefix, when the state file names one whose files exist."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not checkpoint_exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path


def _delete(prefix: str) -> None:
    for suffix in (INDEX_SUFFIX, DATA_SUFFIX, ".meta"):
        Path(prefix + suffix).unlink(missing_ok=True)


def _key(name: str) -> str:
    """A variable's key in a checkpoint: its name without the output index."""
    return name[:-2] if name.endswith(":0") else name


class SaverFiles:
    """A ``Saver``'s files: save a mapping of variable name -> value, restore it, keep the newest."""

    def __init__(self, max_to_keep: int | None = 5) -> None:
        self.max_to_keep = max_to_keep
        self.last_checkpoints: list[str] = []

    def save(self, values: Mapping[str, np.ndarray], save_path: str | os.PathLike[str],
             global_step: int | np.integer | None = None, latest_filename: str | None = None,
             *, write_state: bool = True) -> str:
        """Write the checkpoint and return its prefix (``save_path-<global_step>``)."""
        save_path = os.fspath(save_path)
        prefix = save_path if global_step is None else f"{save_path}-{int(global_step)}"
        directory = os.path.dirname(prefix)
        if directory:
            os.makedirs(directory, exist_ok=True)
        write_checkpoint(prefix, {_key(name): np.asarray(value) for name, value in values.items()})
        self._record(prefix)
        if write_state:
            update_checkpoint_state(directory, prefix, self.last_checkpoints or [prefix], latest_filename)
        return prefix

    def _record(self, prefix: str) -> None:
        if not self.max_to_keep:
            return  # keep every checkpoint, and list none (TensorFlow's bookkeeping is off)
        if prefix in self.last_checkpoints:
            self.last_checkpoints.remove(prefix)
        self.last_checkpoints.append(prefix)
        while len(self.last_checkpoints) > self.max_to_keep:
            _delete(self.last_checkpoints.pop(0))

    def restore(self, save_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
        """Every tensor of the checkpoint, by key (``dense/kernel``)."""
        save_path = os.fspath(save_path)
        if not checkpoint_exists(save_path):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {save_path}")
        return read_checkpoint(save_path)


class CheckpointReader:
    """``tf.train.load_checkpoint``'s reader: tensors by key, shapes and dtypes."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._entries = read_index(Path(prefix + INDEX_SUFFIX).read_bytes())
        self._values: dict[str, np.ndarray] | None = None

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {name: list(entry.shape) for name, entry in self._entries.items()}

    def get_variable_to_dtype_map(self) -> dict[str, np.dtype[np.generic]]:
        return {name: np.dtype(entry.dtype) for name, entry in self._entries.items()}

    def has_tensor(self, name: str) -> bool:
        return name in self._entries

    def get_tensor(self, name: str) -> np.ndarray:
        if name not in self._entries:
            raise KeyError(f"Key {name} not found in checkpoint")
        if self._values is None:
            self._values = read_checkpoint(self.prefix)
        return self._values[name]


def load_checkpoint(ckpt_dir_or_file: str | os.PathLike[str]) -> CheckpointReader:
    """A reader of the checkpoint at a prefix, or of the newest one a directory's state file names."""
    path = os.fspath(ckpt_dir_or_file)
    prefix = latest_checkpoint(path) if os.path.isdir(path) else path
    if prefix is None or not checkpoint_exists(prefix):
        raise ValueError(f"Couldn't find 'checkpoint' file or checkpoints in given directory {path}")
    return CheckpointReader(prefix)
