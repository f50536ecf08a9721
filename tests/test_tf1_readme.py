"""The README's "TF1 graph mode" example runs as written (against the test server)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.server import ServerProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_tf1_example_runs(server: ServerProcess) -> None:
    section = README.read_text().split("## TF1 graph mode", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    source = code.group(1).replace("http://127.0.0.1:8000", server.url)
    source = source.replace('graph="tf1-demo"', f'graph="tf1-demo-{uuid.uuid4().hex[:8]}"')
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "net/batch_normalization/moving_mean:0" in run.stdout and "net/logits/bias:0" in run.stdout
