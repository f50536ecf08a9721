"""One request pipeline: the route is matched once, and every error leaves through one renderer,
the native body on /v1 and the Open Inference Protocol's body on /v2, whoever raised it."""

from __future__ import annotations

import httpx

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
