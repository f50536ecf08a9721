"""TF1 inference programs pass through a real server: the public ones (tests/tf1, copied unchanged)
and more recorded with TensorFlow 2.21 the same way (tests/tf1_extra)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import ServerProcess

TESTS = Path(__file__).resolve().parent
TF1 = TESTS / "tf1"


@pytest.mark.parametrize("folder", ["tf1", "tf1_extra"])
def test_inference_programs_pass(server: ServerProcess, folder: str) -> None:
    run = subprocess.run([sys.executable, str(TF1 / "run_programs.py"), "--backend", "client", "--url", server.url,
                          "--dir", str(TESTS / folder), "--kind", "inference"], capture_output=True, text=True,
                         timeout=600, cwd=TESTS.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"tf1 programs: (\d+)/\1 pass", run.stdout), run.stdout
