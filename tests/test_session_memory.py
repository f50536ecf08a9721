"""The session cache does not pin memory: many input shapes of one layer (one cached session
each) leave the server's RSS near where it was, and /metrics reports the cache in bytes."""

from __future__ import annotations

import gc
from pathlib import Path

import httpx
import numpy as np

from layerserve.protocol import FRAME_CONTENT_TYPE, encode_frame
from tests.probes import rss_bytes
from tests.server import ServerProcess


def test_many_input_shapes_do_not_pin_their_peaks(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--max-tensor-elements", str(2**24), "--batching", "off").start()
    try:
        assert server.proc is not None
        base = f"{server.url}/v1/graphs/shapes/layers"
        body = {"class": "Conv2D", "name": "conv", "config": {"filters": 32, "kernel_size": 3, "padding": "same"}}
        assert httpx.post(base, json=body).status_code == 201
        headers = {"content-type": FRAME_CONTENT_TYPE, "accept": FRAME_CONTENT_TYPE}
        x = np.ones((1, 64, 64, 16), np.float32)
        assert httpx.post(f"{base}/conv/apply", content=encode_frame({}, [x]), headers=headers).status_code == 200
        baseline = rss_bytes(server.proc.pid)
        for side in range(160, 360, 10):  # 20 shapes, one session each, outputs up to 16 MiB
            x = np.ones((1, side, side, 16), np.float32)
            response = httpx.post(f"{base}/conv/apply", content=encode_frame({}, [x]), headers=headers, timeout=60)
            assert response.status_code == 200, response.text[:200]
            del x, response
            gc.collect()
        grown = rss_bytes(server.proc.pid) - baseline
        assert grown < 400 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB over 20 shapes"  # before: 874 MiB
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "layerserve_sessions_bytes " in metrics and "layerserve_sessions_cached 21.0" in metrics, metrics[-800:]
    finally:
        server.stop()
