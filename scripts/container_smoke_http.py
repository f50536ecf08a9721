"""The HTTP half of scripts/container-smoke: talks to a containerised server with the standard library.

``seed URL`` creates a Dense layer, sets known weights, applies it and reads the variables back;
``verify URL`` (after a container restart) checks that the layer and its exact weights survived.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

GRAPH = "smoke"
LAYER = "smoke_dense"
KERNEL = [0.5, -1.0, 0.25, 2.0, -0.75, 1.5]  # 2x3, row-major
BIAS = [0.125, -0.5, 1.0]
X = [1.0, 2.0, -3.0, 0.5]  # 2x2


def call(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path} -> {exc.code}: {exc.read()[:500]!r}") from exc


def tensor(shape: list[int], data: list[float]) -> dict[str, Any]:
    return {"dtype": "float32", "shape": shape, "data": data}


def expected_output() -> list[float]:
    out = []
    for row in range(2):
        for col in range(3):
            value = sum(X[row * 2 + k] * KERNEL[k * 3 + col] for k in range(2)) + BIAS[col]
            out.append(value)
    return out


def check(condition: bool, message: str) -> None:  # noqa: FBT001 - a condition, as assert takes it
    if not condition:
        raise SystemExit(f"smoke check failed: {message}")


def check_apply(url: str) -> None:
    result = call(url, "POST", f"/v1/graphs/{GRAPH}/layers/{LAYER}/apply", {"inputs": [tensor([2, 2], X)]})
    got = result["outputs"][0]["data"]
    check(all(abs(a - b) < 1e-5 for a, b in zip(got, expected_output(), strict=True)),
          f"apply gave {got}, expected {expected_output()}")


def check_weights(url: str) -> None:
    result = call(url, "GET", f"/v1/graphs/{GRAPH}/layers/{LAYER}/variables?values=true")
    names = [v["name"] for v in result["variables"]]
    check(names == ["smoke_dense/kernel:0", "smoke_dense/bias:0"], f"variables are {names}")
    check(result["values"][0]["data"] == KERNEL and result["values"][1]["data"] == BIAS,
          f"variable values are {result['values']}")


def seed(url: str) -> None:
    ready = call(url, "GET", "/readyz")
    check(ready["ready"] is True and "cpu" in ready["providers"], f"readyz says {ready}")
    call(url, "POST", f"/v1/graphs/{GRAPH}/layers", {"class": "Dense", "name": LAYER, "config": {"units": 3}})
    call(url, "POST", f"/v1/graphs/{GRAPH}/layers/{LAYER}/build", {"input_shape": [None, 2]})
    call(url, "PUT", f"/v1/graphs/{GRAPH}/layers/{LAYER}/weights",
         {"weights": [tensor([2, 3], KERNEL), tensor([3], BIAS)]})
    check_apply(url)
    check_weights(url)


def verify(url: str) -> None:
    layer = call(url, "GET", f"/v1/graphs/{GRAPH}/layers/{LAYER}")
    check(layer["name"] == LAYER and layer["built"] is True, f"layer after restart: {layer}")
    check_weights(url)
    check_apply(url)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("seed", "verify"):
        raise SystemExit("usage: container_smoke_http.py seed|verify URL")
    {"seed": seed, "verify": verify}[sys.argv[1]](sys.argv[2].rstrip("/"))
    print(f"{sys.argv[1]}: ok")
