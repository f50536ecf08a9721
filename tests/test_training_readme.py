"""The README's "Training" example runs as written, and its curl step runs the same program."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np

from tests.server import ServerProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def _section() -> str:
    return README.read_text().split("## Training\n", 1)[1].split("\n## ", 1)[0]


def test_readme_training_example_runs_and_curl_runs_the_step(server: ServerProcess) -> None:
    graph = f"train-demo-{uuid.uuid4().hex[:8]}"
    code = re.search(r"```python\n(.*?)```", _section(), re.S)
    assert code is not None
    source = code.group(1).replace("http://127.0.0.1:8000", server.url).replace('"train-demo"', f'"{graph}"')
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("loss after 20 steps:")
    assert lines[1] == "['dense_1/bias/Adam:0', 'dense_1/bias/Adam_1:0']"
    assert lines[2].startswith("program: ") and len(lines[2].split()) == 2  # the last registered: the step
    program = lines[2].split()[1]
    assert _global_step(server, graph) == 20
    curl = re.search(r"-d '(.*?)'", _section(), re.S)
    assert curl is not None
    answer = httpx.post(f"{server.url}/v1/graphs/{graph}/programs/{program}:run", content=curl.group(1),
                        headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    (loss,) = answer.json()["outputs"]
    assert loss["dtype"] == "float32" and loss["shape"] == [] and np.isfinite(loss["data"][0])
    assert _global_step(server, graph) == 21


def _global_step(server: ServerProcess, graph: str) -> int:
    import layerserve

    with layerserve.Connection(server.url, graph=graph) as conn:
        return int({v.name: v.numpy() for v in conn.global_variables()}["global_step:0"])
