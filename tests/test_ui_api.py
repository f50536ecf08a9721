"""The dashboard's server side: its page and assets, variable statistics, live figures per layer,
and the token rules for them, against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import layerserve
from layerserve.server.api.traffic import layer_of_path
from layerserve.server.core.variable_stats import variable_stats
from layerserve.server.traffic import RING, LayerTraffic
from tests.server import ServerProcess
from tests.test_hostile import assert_error

TOKEN = "ui-token-5c1e93b7a2"
LIMITED = "ui-limited-0b77d2e4f9"


def _stats_url(server: ServerProcess, graph: str, layer: str, bins: int | None = None) -> str:
    return f"{server.url}/v1/graphs/{graph}/layers/{layer}/statistics" + ("" if bins is None else f"?bins={bins}")


# ---- the page -------------------------------------------------------------------------
def test_page_and_assets_are_served_with_a_policy_that_loads_nothing_from_elsewhere(server: ServerProcess) -> None:
    page = httpx.get(server.url + "/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(server.url + "/ui/").text == page.text
    assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
    assert {"/ui/app.js", "/ui/charts.js", "/ui/sections.js", "/ui/style.css", "/ui/favicon.svg"} <= set(assets)
    for asset in assets:
        response = httpx.get(server.url + asset)
        assert response.status_code == 200, asset
        # Nothing is fetched from another host: no URL in any asset but the SVG namespace.
        urls = set(re.findall(r"https?://[^\s\"')]+", response.text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (asset, urls)


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fui.py", "/ui/%2e%2e%2fapp.py", "/ui/__init__.py"])
def test_only_the_dashboards_own_files_are_served(server: ServerProcess, path: str) -> None:
    assert_error(httpx.get(server.url + path), 404, "not_found")


# ---- statistics -----------------------------------------------------------------------
def test_statistics_are_numpys_figures_of_the_current_weights(conn: layerserve.Connection) -> None:
    dense = layerserve.layers.Dense(3, name="d")
    dense(np.ones((2, 4), np.float32))
    kernel = np.arange(12, dtype=np.float32).reshape(4, 3) / 7 - 0.5
    bias = np.array([1.0, np.nan, np.inf], np.float32)
    dense.set_weights([kernel, bias])
    response = httpx.get(_stats_url_of(conn, "d", bins=4))
    assert response.status_code == 200
    body = response.json()
    assert body["bins"] == 4 and body["layer"] == dense.id
    assert response.headers["x-layer-version"] == str(body["version"])
    k, b = body["variables"]
    assert (k["name"], k["shape"], k["dtype"], k["trainable"], k["size"]) == ("d/kernel:0", [4, 3], "float32", True, 12)
    as64 = kernel.astype(np.float64)
    assert k["min"] == as64.min() and k["max"] == as64.max()
    assert k["mean"] == pytest.approx(as64.mean()) and k["std"] == pytest.approx(as64.std())
    counts, edges = np.histogram(as64, bins=4)
    assert k["histogram"]["counts"] == counts.tolist()
    assert k["histogram"]["edges"] == pytest.approx(edges.tolist())
    # NaN and infinities are counted and left out of the figures
    assert (b["nan"], b["inf"], b["min"], b["max"], b["std"]) == (1, 1, 1.0, 1.0, 0.0)
    assert sum(b["histogram"]["counts"]) == 1


def _stats_url_of(conn: layerserve.Connection, layer: str, bins: int | None = None) -> str:
    return f"{conn.url}/v1/graphs/{conn.graph}/layers/{layer}/statistics" + ("" if bins is None else f"?bins={bins}")


def test_statistics_follow_the_weights_and_an_unbuilt_layer_has_none(conn: layerserve.Connection) -> None:
    dense = layerserve.layers.Dense(2, name="later")
    assert httpx.get(_stats_url_of(conn, "later")).json()["variables"] == []
    dense(np.ones((1, 2), np.float32))
    before = httpx.get(_stats_url_of(conn, dense.id)).json()
    assert len(before["variables"][0]["histogram"]["counts"]) == 30  # the default
    dense.set_weights([np.full((2, 2), 3.0, np.float32), np.zeros(2, np.float32)])
    after = httpx.get(_stats_url_of(conn, "later")).json()
    assert after["version"] > before["version"]
    assert after["variables"][0]["min"] == after["variables"][0]["max"] == 3.0
    assert after["variables"][0]["histogram"]["counts"] == [4]  # a constant: one bin around it


@pytest.mark.parametrize("query", ["bins=0", "bins=201", "bins=x", "bins=-3"])
def test_statistics_refuse_a_bad_bin_count(conn: layerserve.Connection, query: str) -> None:
    layerserve.layers.Dense(2, name="b")(np.ones((1, 2), np.float32))
    response = httpx.get(_stats_url_of(conn, "b") + "?" + query)
    assert response.status_code == 422 and "error" in response.json()


def test_statistics_of_a_missing_layer_or_graph(server: ServerProcess, conn: layerserve.Connection) -> None:
    layerserve.layers.Dense(2, name="there")(np.ones((1, 2), np.float32))
    assert_error(httpx.get(_stats_url_of(conn, "nope")), 404, "layer_not_found")
    assert_error(httpx.get(_stats_url(server, "no_such_graph_ui", "x")), 404, "graph_not_found")


def test_variable_stats_of_nothing_finite() -> None:
    out = variable_stats(np.array([np.nan, np.inf, -np.inf], np.float32))
    assert (out["size"], out["nan"], out["inf"], out["min"], out["histogram"]["counts"]) == (3, 1, 2, None, [])
    assert variable_stats(np.zeros((0, 3), np.float32))["mean"] is None


# ---- live figures ---------------------------------------------------------------------
def _figures(conn: layerserve.Connection, window: float = 30) -> dict[str, dict[str, object]]:
    response = httpx.get(f"{conn.url}/v1/graphs/{conn.graph}/figures?window={window}")
    assert response.status_code == 200, response.text
    return response.json()["layers"]  # type: ignore[no-any-return]


def test_figures_count_applies_by_name_id_and_v2_errors_included(conn: layerserve.Connection) -> None:
    dense = layerserve.layers.Dense(2, name="busy")
    quiet = layerserve.layers.Dense(2, name="quiet")
    x = np.ones((3, 4), np.float32)
    quiet(x)
    assert set(_figures(conn)) == {quiet.id}
    for _ in range(5):
        dense(x)
    base = f"{conn.url}/v1/graphs/{conn.graph}/layers"
    for _ in range(2):  # by id, JSON
        assert httpx.post(f"{base}/{dense.id}/apply", json={"inputs": [{"dtype": "float32", "shape": [3, 4],
                                                                              "data": [1.0] * 12}]}).status_code == 200
    infer = {"inputs": [{"name": "input_0", "shape": [3, 4], "datatype": "FP32", "data": [1.0] * 12}]}
    assert httpx.post(f"{conn.url}/v2/models/{conn.graph}.busy/infer", json=infer).status_code == 200
    bad = httpx.post(f"{base}/busy/apply", json={"inputs": [{"dtype": "float32", "shape": [3, 5], "data": [1.0] * 15}]})
    assert bad.status_code == 409  # the built layer takes 4 columns: an error, counted as one
    figures = _figures(conn)
    busy = figures[dense.id]
    assert busy["name"] == "busy"
    assert (busy["requests"], busy["errors"], busy["total_requests"], busy["total_errors"]) == (9, 1, 9, 1)
    assert busy["requests_per_s"] == pytest.approx(9 / 30)
    assert 0 < busy["p50_ms"] <= busy["p99_ms"]  # type: ignore[operator]
    batch = busy["batch"]
    assert isinstance(batch, dict) and batch["runs"] >= 1 and sum(batch["sizes"].values()) == batch["runs"]
    assert figures[quiet.id]["requests"] == 1


def test_a_deleted_layer_leaves_the_figures(conn: layerserve.Connection) -> None:
    dense = layerserve.layers.Dense(2, name="gone")
    dense(np.ones((1, 2), np.float32))
    assert dense.id in _figures(conn)
    assert httpx.delete(f"{conn.url}/v1/graphs/{conn.graph}/layers/{dense.id}").status_code == 204
    assert dense.id not in _figures(conn)


def test_a_new_layer_under_a_deleted_ones_name_starts_at_zero(conn: layerserve.Connection) -> None:
    old = layerserve.layers.Dense(2, name="reborn")
    old(np.ones((1, 2), np.float32))
    bad = httpx.post(f"{conn.url}/v1/graphs/{conn.graph}/layers/reborn/apply",
                     json={"inputs": [{"dtype": "float32", "shape": [1, 3], "data": [1.0] * 3}]})
    assert bad.status_code == 409
    assert _figures(conn)[old.id]["requests"] == 2
    assert httpx.delete(f"{conn.url}/v1/graphs/{conn.graph}/layers/reborn").status_code == 204
    new = layerserve.layers.Dense(2, name="reborn")
    new.build((None, 2))
    assert new.id not in _figures(conn)  # before: the old layer's two requests, found by name
    new(np.ones((1, 2), np.float32))
    assert _figures(conn)[new.id]["requests"] == 1


@pytest.mark.parametrize("window", ["0", "0.1", "61", "nan", "inf", "x"])
def test_figures_refuse_a_bad_window(conn: layerserve.Connection, window: str) -> None:
    layerserve.layers.Dense(2)(np.ones((1, 2), np.float32))
    response = httpx.get(f"{conn.url}/v1/graphs/{conn.graph}/figures?window={window}")
    assert response.status_code == 422 and "error" in response.json()


def test_traffic_windows_and_bounds() -> None:
    now = [100.0]
    traffic = LayerTraffic(clock=lambda: now[0])
    traffic.record_request("g", "a", 200, 0.010)
    now[0] = 105.0
    traffic.record_request("g", "~1", 500, 0.030)
    traffic.record_run("g/~1", 3, 6)
    traffic.record_run("other/~1", 9, 9)
    resolve = {"a": "~1", "~1": "~1"}.get
    recent = traffic.figures("g", 2.0, resolve)["~1"].to_json(2.0)
    assert (recent["requests"], recent["errors"], recent["total_requests"]) == (1, 1, 2)
    assert recent["p50_ms"] == pytest.approx(30.0) and recent["batch"]["sizes"] == {"3": 1}
    assert traffic.figures("g", 10.0, resolve)["~1"].requests == 2
    assert traffic.figures("g", 10.0, lambda ref: None) == {}
    # Requests served outside the batcher's runs ran alone: runs of one.
    alone = LayerTraffic()
    for _ in range(3):
        alone.record_request("g", "a", 200, 0.001)
    alone.record_run("g/~1", 2, 2)
    batch = alone.figures("g", 10.0, resolve)["~1"].to_json(10.0)["batch"]
    assert (batch["sizes"], batch["runs"], batch["batched_runs"], batch["mean"]) == ({"1": 1, "2": 1}, 2, 1, 1.5)
    for _ in range(RING + 10):
        traffic.record_request("g", "a", 200, 0.001)
    assert traffic.figures("g", 10.0, resolve)["~1"].requests == RING + 1  # the ring of "a" is full


def test_rings_grow_only_while_the_longest_window_needs_them() -> None:
    now = [0.0]
    traffic = LayerTraffic(clock=lambda: now[0])
    for _ in range(500):  # 500 requests within a second: every one stays
        now[0] += 0.001
        traffic.record_request("g", "busy", 200, 0.002)
    for _ in range(500):  # one a minute: the ring keeps its first size, the window sees the last one
        now[0] += 61.0
        traffic.record_request("g", "slow", 200, 0.002)
    figures = traffic.figures("g", 60.0, lambda ref: ref)
    assert figures["slow"].requests == 1 and figures["slow"].total_requests == 500
    busy = traffic._by_ref[("g", "busy")].requests
    assert busy.t.size == 512 and int(np.count_nonzero(np.isfinite(busy.t))) == 500
    assert traffic._by_ref[("g", "slow")].requests.t.size == 64


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/graphs/g/layers/dense/apply", ("g", "dense")),
    ("/v2/models/g.dense.1/infer", ("g", "dense.1")),
    ("/v2/models/dense/infer", ("default", "dense")),
    ("/v2/models/g.d/versions/3/infer", ("g", "d")),
    ("/v2/models/g.d/other/3/infer", None),
    ("/v1/graphs/g/layers/dense/build", None),
    ("/v1/graphs//layers/dense/apply", None),
])
def test_which_layer_a_request_addresses(path: str, expected: tuple[str, str] | None) -> None:
    assert layer_of_path(path) == expected


# ---- tokens ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui-auth") / "state", "--token", TOKEN,
                         "--token", f"{LIMITED}:mine").start()
    yield proc
    proc.stop()


def test_with_a_token_the_page_loads_but_no_state_without_it(guarded: ServerProcess) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    for path in ("/ui", "/ui/", "/ui/app.js", "/ui/style.css"):
        assert httpx.get(guarded.url + path).status_code == 200, path
    conn = layerserve.connect(guarded.url, graph="mine", token=TOKEN)
    layerserve.layers.Dense(2, name="d")(np.ones((1, 2), np.float32))
    conn.close()
    for path in ("/v1/graphs/mine/figures", "/v1/graphs/mine/layers/d/statistics"):
        assert_error(httpx.get(guarded.url + path), 401, "unauthorized")
        assert httpx.get(guarded.url + path, headers=headers).status_code == 200
        assert httpx.get(guarded.url + path, headers={"authorization": f"Bearer {LIMITED}"}).status_code == 200
    assert_error(httpx.get(guarded.url + "/v1/graphs/other/figures", headers={"authorization": f"Bearer {LIMITED}"}),
                 403, "forbidden")
    # The page itself holds nothing of the state.
    assert "mine" not in httpx.get(guarded.url + "/ui").text


def test_program_outline_names_layers_variables_and_edges() -> None:
    from onnx import TensorProto, helper

    from layerserve.server.core.program_outline import outline

    nodes = [
        helper.make_node("ReadVariable", [], ["w"], name="net/w/read", domain="ai.layerserve", variable="net/w:0"),
        helper.make_node("LayerCall", ["x"], ["h"], name="net/dense/call", domain="ai.layerserve", layer="~3"),
        helper.make_node("MatMul", ["h", "w"], ["y"], name="net/matmul"),
        helper.make_node("Assign", ["y"], [], name="net/assign", domain="ai.layerserve", variable="net/v:0"),
    ]
    graph = helper.make_graph(nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    out = outline(helper.make_model(graph), lambda ref: ("dense", "Dense") if ref == "~3" else (ref, "?"))
    assert (out["feeds"], out["fetches"], out["n_nodes"], out["truncated"]) == (["x"], ["y"], 5, False)
    by_name = {n["name"]: n for n in out["nodes"]}
    assert by_name["x"]["kind"] == "placeholder"
    assert by_name["net/dense/call"] | {"inputs": None} == {"name": "net/dense/call", "op": "LayerCall", "kind": "layer",
                                                             "layer": "~3", "label": "dense", "class": "Dense",
                                                             "inputs": None}
    assert by_name["net/dense/call"]["inputs"] == ["x"]
    assert by_name["net/matmul"]["inputs"] == ["net/dense/call", "net/w/read"]
    assert (by_name["net/w/read"]["access"], by_name["net/assign"]["access"]) == ("read", "assign")
    assert by_name["net/assign"]["inputs"] == ["net/matmul"]


def test_programs_are_listed_and_outlined(server: ServerProcess) -> None:
    import layerserve.compat.v1 as tf

    tf.reset_default_graph()
    conn = layerserve.connect(server.url, graph="ui_programs")
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.layers.dense(x, 2, name="head")
    total = tf.reduce_sum(y, name="total")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(total, {x: np.ones((2, 3), np.float32)})
    graph = tf.get_default_graph().binding.conn.graph
    conn.close()
    listed = httpx.get(f"{server.url}/v1/graphs/{graph}/programs").json()["programs"]
    mine = [p for p in listed if p["fetches"] == ["total:0"]]
    assert len(mine) == 1 and mine[0]["feeds"] == ["x:0"]
    outline = httpx.get(f"{server.url}/v1/graphs/{graph}/programs/{mine[0]['id']}").json()
    assert outline["n_nodes"] == len(outline["nodes"]) and not outline["truncated"]
    nodes = {n["name"]: n for n in outline["nodes"]}
    layer = next(n for n in nodes.values() if n["kind"] == "layer")
    assert (layer["label"], layer["class"], layer["inputs"]) == ("head", "Dense", ["x"])
    assert nodes["total"]["op"] == "ReduceSum" and nodes["total"]["inputs"] == [layer["name"]]
    assert_error(httpx.get(f"{server.url}/v1/graphs/{graph}/programs/nope"), 404, "program_not_found")
    assert_error(httpx.get(f"{server.url}/v1/graphs/no_such_graph_p/programs"), 404, "graph_not_found")
