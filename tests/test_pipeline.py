"""One request pipeline: the route is matched once, and every error leaves through one renderer,
the native body on /v1 and the Open Inference Protocol's body on /v2, whoever raised it."""

from __future__ import annotations

import httpx

from layerserve.server.api.routes import RouteTable
from tests.server import ServerProcess
from tests.test_hostile import assert_error


def test_v2_errors_use_the_protocol_body_whoever_raises_them(server: ServerProcess) -> None:
    for response in (httpx.get(f"{server.url}/v2/models/x/nosuch"),  # the router's 404
                     httpx.delete(f"{server.url}/v2/models/x/infer"),  # the router's 405
                     httpx.post(f"{server.url}/v2/models/nosuchlayer/infer", json={"inputs": []})):  # the plane's
        assert response.status_code in (404, 405), response.text
        body = response.json()
        assert isinstance(body["error"], str) and body["error"], body  # before: the native body on the first two


def test_v1_errors_use_the_native_body(server: ServerProcess) -> None:
    assert_error(httpx.get(f"{server.url}/v1/graphs/pipe/nosuch"), 404, "not_found")
    assert_error(httpx.get(f"{server.url}/v1/graphs/bad%2Fname/layers"), 422, "invalid_name")
    assert_error(httpx.post(f"{server.url}/v1/graphs/pipe/layers/bad%2Fname/apply", json={}), 422, "invalid_name")


def test_metrics_label_requests_by_the_matched_template(server: ServerProcess) -> None:
    httpx.get(f"{server.url}/v1/graphs/pipe/layers/nosuch")
    text = httpx.get(f"{server.url}/metrics").text
    assert 'route="/v1/graphs/{graph}/layers/{layer}",status="404"' in text


def test_route_matches_are_kept_by_path_and_stay_right_past_the_kept_number() -> None:
    table = RouteTable([("/v1/graphs/{graph}/layers/{layer}/apply", {"POST"}), ("/v1/graphs/{graph}", {"GET"})])
    first = table.match(b"/v1/graphs/g/layers/a%2Fb/apply")
    assert first is not None and first.params == {"graph": "g", "layer": "a/b"}
    assert table.match(b"/v1/graphs/g/layers/a%2Fb/apply") is first  # the same path: matched once
    assert table.match(b"/v1/graphs/g/nothing") is None
    for k in range(3 * 4096):  # more distinct paths than are kept
        found = table.match(f"/v1/graphs/g{k}/layers/l{k}/apply".encode())
        assert found is not None and found.params == {"graph": f"g{k}", "layer": f"l{k}"}
    again = table.match(b"/v1/graphs/g/layers/a%2Fb/apply")
    assert again is not None and again.params == {"graph": "g", "layer": "a/b"}
    assert table.match(b"/v1/graphs/g/nothing") is None
