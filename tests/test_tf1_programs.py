"""The public TF1 inference programs (tests/tf1, copied unchanged) pass through a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.server import ServerProcess

TF1 = Path(__file__).resolve().parent / "tf1"


def test_inference_programs_pass(server: ServerProcess) -> None:
    run = subprocess.run([sys.executable, str(TF1 / "run_programs.py"), "--backend", "client", "--url", server.url,
                          "--dir", str(TF1), "--kind", "inference"], capture_output=True, text=True, timeout=600,
                         cwd=TF1.parent.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"tf1 programs: (\d+)/\1 pass", run.stdout), run.stdout
