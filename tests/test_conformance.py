"""Every TensorFlow reference case, through a real server and the client."""

from __future__ import annotations

from pathlib import Path

import pytest

import layerserve
from tests.conformance.runner import EXTRA, Case, discover_cases, run_case, run_functional

CASES = discover_cases()
# The extra cases (generate.py) run in the class form only, to keep the suite fast; the other
# forms share all of their code with it and run on every other case.
CORE_CASES = [(label, d) for label, d in CASES if EXTRA not in d.parents]
IMPLEMENTED = {
    "Dense", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "BatchNormalization", "Dropout", "Flatten",
    "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
}


def _case(directory: Path) -> Case:
    case = Case.load(directory)
    if case.data["class"] not in IMPLEMENTED:
        pytest.skip(f"{case.data['class']} is not implemented yet")
    return case


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
