"""The file side of TF1's ``Saver`` (``layerserve.saver``): prefixes, the ``checkpoint`` state
file, ``max_to_keep`` and ``latest_checkpoint`` as TensorFlow 2.21 gives them (spec
tf1-graph-mode.md, "Saver"; the expectations are what TensorFlow printed for the same calls)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from layerserve import saver
from layerserve.saver import SaverFiles

VALUES = {"v:0": np.float32(1.0), "global_step:0": np.int64(3), "net/fc/kernel:0": np.ones((2, 3), np.float32)}


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_max_to_keep_and_state_file(tmp_path: Path) -> None:
    files = SaverFiles(max_to_keep=2)
    base = str(tmp_path / "d1" / "model")
    assert [files.save(VALUES, base, global_step=step) for step in (1, 2, 3)] == [f"{base}-1", f"{base}-2", f"{base}-3"]
    assert _listing(tmp_path / "d1") == ["checkpoint", "model-2.data-00000-of-00001", "model-2.index",
                                         "model-3.data-00000-of-00001", "model-3.index"]
    assert (tmp_path / "d1" / "checkpoint").read_text() == (
        f'model_checkpoint_path: "{base}-3"\nall_model_checkpoint_paths: "{base}-2"\n'
        f'all_model_checkpoint_paths: "{base}-3"\n')
    assert files.save(VALUES, base, global_step=np.int64(3)) == f"{base}-3"  # saved again: no duplicate
    assert files.last_checkpoints == [f"{base}-2", f"{base}-3"]
    other = files.save(VALUES, str(tmp_path / "d1" / "other"))  # another prefix counts too
    assert other == str(tmp_path / "d1" / "other")
    assert _listing(tmp_path / "d1") == ["checkpoint", "model-3.data-00000-of-00001", "model-3.index",
                                         "other.data-00000-of-00001", "other.index"]
    assert saver.latest_checkpoint(tmp_path / "d1") == other
    state = saver.get_checkpoint_state(tmp_path / "d1")
    assert state is not None and state.all_model_checkpoint_paths == [f"{base}-3", other]


def test_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    prefix = SaverFiles(max_to_keep=None).save(VALUES, "d2/rel", global_step=7)
    assert prefix == "d2/rel-7"
    assert (tmp_path / "d2" / "checkpoint").read_text() == (
        'model_checkpoint_path: "rel-7"\nall_model_checkpoint_paths: "rel-7"\n')
    assert saver.latest_checkpoint("d2") == "d2/rel-7"


def test_keep_everything(tmp_path: Path) -> None:
    files = SaverFiles(max_to_keep=0)
    for step in range(4):
        files.save(VALUES, tmp_path / "m", global_step=step)
    assert len(list(tmp_path.glob("m-*.index"))) == 4 and files.last_checkpoints == []
    assert saver.latest_checkpoint(tmp_path) == str(tmp_path / "m-3")


def test_restore_and_load_checkpoint(tmp_path: Path) -> None:
    files = SaverFiles()
    prefix = files.save(VALUES, tmp_path / "model", global_step=3)
    restored = files.restore(prefix)
    assert sorted(restored) == ["global_step", "net/fc/kernel", "v"]
    assert restored["global_step"].dtype == np.int64 and int(restored["global_step"]) == 3
    reader = saver.load_checkpoint(tmp_path)  # a directory: its newest checkpoint
    assert reader.get_variable_to_shape_map() == {"global_step": [], "net/fc/kernel": [2, 3], "v": []}
    assert reader.get_variable_to_dtype_map()["v"] == np.float32 and reader.has_tensor("v")
    np.testing.assert_array_equal(reader.get_tensor("net/fc/kernel"), np.ones((2, 3), np.float32))
    with pytest.raises(KeyError, match="Key nope not found in checkpoint"):
        reader.get_tensor("nope")


def test_missing_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"The passed save_path is not a valid checkpoint: {tmp_path}/nope-7"):
        SaverFiles().restore(os.path.join(tmp_path, "nope-7"))
    assert saver.latest_checkpoint(tmp_path / "nothing") is None
    assert saver.get_checkpoint_state(tmp_path) is None
    with pytest.raises(ValueError, match="Couldn't find 'checkpoint' file"):
        saver.load_checkpoint(tmp_path)


def test_state_file_quotes_paths(tmp_path: Path) -> None:
    odd = tmp_path / 'we"ird\\dir'
    prefix = SaverFiles().save(VALUES, odd / "m", global_step=1)
    assert saver.latest_checkpoint(odd) == prefix
