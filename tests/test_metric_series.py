"""Apply-latency series are labelled by layer id: however a request names the layer (name, id,
``graph.name`` on /v2), one series per layer, and a deleted layer takes its series with it."""

from __future__ import annotations

import httpx

from tests.server import ServerProcess
from tests.test_hostile import tensor

GRAPH = "serieschurn"


def _series(url: str) -> list[str]:
    text = httpx.get(url + "/metrics").text
    return [line for line in text.splitlines()
            if line.startswith("layerserve_apply_duration_seconds_count") and f'graph="{GRAPH}"' in line]


def test_create_apply_delete_cycles_leave_no_series(server: ServerProcess) -> None:
    base = f"/v1/graphs/{GRAPH}/layers"
    x = {"inputs": [tensor("float32", [1, 2], [1, 2])]}
    oip = {"inputs": [{"name": "input_0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(20):
            layer_id = http.post(base, json={"class": "Dense", "name": "churn", "config": {"units": 1}}).json()["id"]
            for ref in ("churn", layer_id):
                assert http.post(f"{base}/{ref}/apply", json=x).status_code == 200
            assert http.post(f"/v2/models/{GRAPH}.churn/infer", json=oip).status_code == 200
            series = _series(server.url)
            assert len(series) == 1 and f'layer="{layer_id}"' in series[0], series  # before: one per spelling
            assert series[0].endswith(" 3.0"), series
            assert http.delete(f"{base}/churn").status_code == 204  # by name: the id's series goes too
            assert _series(server.url) == []  # before: the stale series stayed, one more per cycle
