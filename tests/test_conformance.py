"""Every TensorFlow reference case, through a real server and the client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import layerserve
from tests.conformance.runner import EXTRA, HERE, Case, case_dirs, discover_cases, run_case, run_functional

CASES = discover_cases()
# The extra cases (generate.py) run in the class form only, to keep the suite fast; the other
# forms share all of their code with it and run on every other case.
CORE_CASES = [(label, d) for label, d in CASES if EXTRA not in d.parents]
IMPLEMENTED = {
    "Dense", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "BatchNormalization", "Dropout", "Flatten",
    "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
}


# The reference cases this repository holds (cases/ and extra/cases/): a lost index or an
# emptied folder must fail the suite, not shrink it.
REPOSITORY_CASES = {HERE: 37, EXTRA: 191}


def _case(directory: Path) -> Case:
    case = Case.load(directory)
    assert case.data["class"] in IMPLEMENTED, f"case {case.id}: class {case.data['class']} is not implemented"
    return case


def test_every_repository_case_is_found_and_runs() -> None:
    """Each case folder on disk is listed in its index, and every case found is parametrized."""
    for root, expected in REPOSITORY_CASES.items():
        on_disk = sorted(p.parent.name for p in (root / "cases").glob("*/case.json"))
        listed = sorted(d.name for d in case_dirs(root))
        assert listed == on_disk, f"{root}: index and folders differ"
        assert len(listed) == expected, f"{root}: {len(listed)} cases, expected {expected}"
        assert all((root / "cases" / name / "arrays.npz").is_file() for name in listed)
    found = {d for _, d in CASES}
    assert all(d in found for root in REPOSITORY_CASES for d in case_dirs(root))
    assert len(CASES) >= sum(REPOSITORY_CASES.values())


def test_an_unimplemented_class_or_an_empty_folder_fails(tmp_path: Path) -> None:
    """The runner's own guards: neither can pass silently."""
    empty = tmp_path / "empty"
    (empty / "cases").mkdir(parents=True)
    assert case_dirs(empty) == []
    with pytest.raises(FileNotFoundError):
        Case.load(empty / "cases")
    source = CORE_CASES[0][1]
    fake = tmp_path / "fake"
    fake.mkdir()
    data = json.loads((source / "case.json").read_text())
    (fake / "case.json").write_text(json.dumps({**data, "class": "LocallyConnected2D"}))
    (fake / "arrays.npz").write_bytes((source / "arrays.npz").read_bytes())
    with pytest.raises(AssertionError, match="not implemented"):
        _case(fake)


@pytest.mark.parametrize("directory", [d for _, d in CASES], ids=[i for i, _ in CASES])
def test_case(conn: layerserve.Connection, directory: Path) -> None:
    run_case(conn, _case(directory))


@pytest.mark.parametrize("directory", [d for _, d in CORE_CASES], ids=[i for i, _ in CORE_CASES])
def test_case_functional_form(conn: layerserve.Connection, directory: Path) -> None:
    run_functional(conn, _case(directory))


@pytest.mark.parametrize("directory", [d for _, d in CORE_CASES], ids=[i for i, _ in CORE_CASES])
def test_case_over_json(json_conn: layerserve.Connection, directory: Path) -> None:
    """The JSON tensor form gives the same results as the binary one."""
    run_case(json_conn, _case(directory))
