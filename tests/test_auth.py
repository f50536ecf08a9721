"""Bearer tokens: every route but health needs one; limited tokens reach only their graphs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import layerserve
from layerserve.exceptions import AuthenticationError
from layerserve.server.api.auth import authorize, parse_tokens
from tests.server import ServerProcess
from tests.test_hostile import assert_error

ADMIN = "admin-7f3c9e1d5b"
LIMITED = "team-a-24d8e0c6f1"
WRONG = "wrong-90be11aa37"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("auth") / "state", "--token", ADMIN, "--log-level", "debug",
                         env={"LAYERSERVE_TOKEN": "unused"})
    proc.args += ["--token", f"{LIMITED}:team_a|shared"]
    yield proc.start()
    proc.stop()


def _assert_refused(response: httpx.Response, path: str, status: int, code: str) -> None:
    """The contract's error body; on the Open Inference Protocol's routes, that protocol's."""
    if path.startswith("/v2"):
        assert response.status_code == status and isinstance(response.json()["error"], str)
    else:
        assert_error(response, status, code)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="missing"),
    pytest.param(_bearer(WRONG), id="wrong"),
    pytest.param(_bearer(ADMIN[:-1]), id="prefix"),
    pytest.param(_bearer(ADMIN + "x"), id="longer"),
    pytest.param({"authorization": f"Basic {ADMIN}"}, id="basic-scheme"),
    pytest.param({"authorization": "Bearer"}, id="empty"),
    pytest.param({"authorization": f"Bearer {LIMITED}:team_a|shared"}, id="rule-as-token"),
])
@pytest.mark.parametrize("path", ["/v1/graphs", "/v1/graphs/default/layers", "/v1/config", "/metrics",
                                  "/openapi.json", "/docs", "/v2", "/v2/models/fc"])
def test_no_valid_token_is_401(guarded: ServerProcess, headers: dict[str, str], path: str) -> None:
    response = httpx.get(guarded.url + path, headers=headers)
    _assert_refused(response, path, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-request-id"]


def test_writes_without_a_token_change_nothing(guarded: ServerProcess) -> None:
    assert_error(httpx.post(guarded.url + "/v1/graphs/sneaky/layers", json={"class": "Dense", "config": {"units": 1}}),
                 401)
    graphs = httpx.get(guarded.url + "/v1/graphs", headers=_bearer(ADMIN)).json()["graphs"]
    assert "sneaky" not in graphs
    assert not (guarded.state_dir / "graphs" / "sneaky").exists()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"])
def test_health_needs_no_token(guarded: ServerProcess, path: str) -> None:
    response = httpx.get(guarded.url + path)
    assert response.status_code == 200, response.text  # served, and ready: no token asked


def test_the_client_sends_its_token(guarded: ServerProcess) -> None:
    conn = layerserve.connect(guarded.url, graph="team_a", token=ADMIN)
    dense = conn.layers.Dense(2, name="fc")
    assert dense.apply(np.ones((1, 3), np.float32)).shape == (1, 2)
    conn.close()
    bad = layerserve.connect(guarded.url, graph="team_a", token=WRONG)
    with pytest.raises(AuthenticationError) as info:
        bad.list_layers()
    assert isinstance(info.value, PermissionError) and info.value.status == 401
    bad.close()


def test_a_limited_token_reaches_only_its_graphs(guarded: ServerProcess) -> None:
    http = httpx.Client(base_url=guarded.url, headers=_bearer(LIMITED))
    for graph in ("team_a", "shared"):
        assert http.post(f"/v1/graphs/{graph}/layers", json={"class": "Dense", "config": {"units": 1}}).status_code == 201
        assert http.get(f"/v1/graphs/{graph}/layers").status_code == 200
    metadata = http.get("/v2/models/team_a.dense_1")
    assert metadata.status_code == 200 and metadata.json()["name"] == "team_a.dense_1", metadata.text
    for path in ("/v1/graphs/team_b/layers", "/v1/graphs/default/layers", "/v2/models/dense_1", "/v1/graphs",
                 "/metrics", "/v1/config"):
        _assert_refused(http.get(path), path, 403, "forbidden")
    assert_error(http.post("/v1/graphs/team_b/layers", json={"class": "Dense", "config": {"units": 1}}), 403)
    assert http.get("/openapi.json").status_code == 200
    http.close()


def test_config_and_logs_never_show_a_token(guarded: ServerProcess) -> None:
    config = httpx.get(guarded.url + "/v1/config", headers=_bearer(ADMIN))
    assert config.json()["token"] == "2 token(s) configured"
    for token in (ADMIN, LIMITED, WRONG):
        httpx.get(guarded.url + "/v1/graphs", headers=_bearer(token))
        assert token not in config.text
    log = guarded.log_path.read_text()
    assert '"message": "request"' in log  # debug logging was on: every request was logged
    for token in (ADMIN, LIMITED, WRONG):
        assert token not in log


def test_token_rules() -> None:
    rules = parse_tokens(["plain", "scoped:g1|g-2", "has:colons:inside", "trailing:"])
    assert [(r.secret, r.graphs) for r in rules] == [
        (b"plain", None), (b"scoped", frozenset({"g1", "g-2"})), (b"has:colons", frozenset({"inside"})),
        (b"trailing:", None)]
    assert "scoped" not in repr(rules[1])
    assert authorize(rules, "Bearer plain", "/v1/graphs/x/layers") is None
    assert authorize(rules, "bearer  scoped ", "/v1/graphs/g-2/layers") is None
    assert authorize(rules, "Bearer scoped", "/v1/graphs/g3/layers") == "forbidden"
    assert authorize(rules, "Bearer scoped", "/v2/models/g1.fc/infer") is None
    assert authorize(rules, "Bearer scoped", "/v2/models/fc/infer") == "forbidden"  # default graph
    assert authorize(rules, None, "/v2/health/ready") is None
    assert authorize(rules, "Bearer nope", "/healthz") is None
    assert authorize([], None, "/v1/graphs") is None
