"""The scale profile's smoke test, through the balancer (standard library only).

    python3 scripts/scale_smoke_http.py http://127.0.0.1:8080 REPLICAS

Sets a Dense layer's weights once, then many applies through the balancer must all compute
with them and report the same layer version, answered by every replica; layers created
through the balancer get unique names whichever replica made them.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

GRAPH = "scale-smoke"
APPLIES = 60


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"content-type": "application/json", "accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def tensor(rows: list[list[float]]) -> dict[str, Any]:
    return {"dtype": "float32", "shape": [len(rows), len(rows[0])], "data": [v for row in rows for v in row]}


def expect(ok: bool, what: str) -> None:  # noqa: FBT001 - a condition, as assert takes it
    if not ok:
        raise SystemExit(f"scale smoke: {what}")


def wait_ready(url: str) -> None:
    for _ in range(60):
        try:
            if call(url, "GET", "/readyz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(1)
    raise SystemExit("scale smoke: the balancer never answered /readyz")


def main(url: str, replicas: int) -> None:
    wait_ready(url)
    layers = f"/v1/graphs/{GRAPH}/layers"
    status, _, made = call(url, "POST", layers, {"class": "Dense", "config": {"units": 3}})
    expect(status == 201, f"create answered {status}: {made}")
    path = f"{layers}/{made['id']}"
    expect(call(url, "POST", f"{path}/build", {"input_shape": [None, 4]})[0] == 200, "build failed")
    kernel = [[float(i * 3 + j) for j in range(3)] for i in range(4)]
    bias = [0.5, -1.0, 2.0]
    status, headers, body = call(url, "PUT", f"{path}/weights", {"weights": [
        tensor(kernel), {"dtype": "float32", "shape": [3], "data": bias}]})
    expect(status == 200, f"set_weights answered {status}: {body}")
    version = header(headers, "x-layer-version")
    x = [[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 2.0]]
    want = [[sum(xi[k] * kernel[k][j] for k in range(4)) + bias[j] for j in range(3)] for xi in x]
    upstreams = set()
    for _ in range(APPLIES):
        status, headers, body = call(url, "POST", f"{path}/apply", {"inputs": [tensor(x)]})
        expect(status == 200, f"apply answered {status}: {body}")
        got = body["outputs"][0]["data"]
        expect(got == [v for row in want for v in row], f"apply saw other weights: {got} != {want}")
        expect(header(headers, "x-layer-version") == version, "an apply reported another layer version")
        upstreams.add(header(headers, "x-upstream"))
    expect(len(upstreams) == replicas, f"{APPLIES} applies reached {sorted(upstreams)}, not {replicas} replicas")
    names = [call(url, "POST", layers, {"class": "Dense", "config": {"units": 1}})[2]["name"] for _ in range(6)]
    expect(names == [f"dense_{i}" for i in range(2, 8)], f"names made through the balancer: {names}")
    print(f"scale smoke: {APPLIES} applies over {len(upstreams)} replicas saw version {version}; names {names[0]}..")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
