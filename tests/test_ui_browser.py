"""The dashboard in a real browser: headless Chromium (Debian's, installed by ``make test``)
against a real server. Screenshots of the main views go to ``artifacts/ui/`` (or
``$LAYERSERVE_ARTIFACTS/ui``); the README's come from there.

Without Chromium these tests are skipped with the reason, except under ``CI=true``, where a
missing browser fails them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import layerserve
from tests.browser import Browser, chromium_path
from tests.server import ROOT, ServerProcess

TOKEN = "browser-token-7a41c0d9e2"
ARTIFACTS = Path(os.environ.get("LAYERSERVE_ARTIFACTS", ROOT / "artifacts")) / "ui"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = chromium_path()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing (CI=true): install Debian's chromium (make test does)")
        pytest.skip("chromium is missing: install Debian's chromium (make test does) to run the browser tests")
    return found


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    b = Browser(chromium)
    yield b
    exceptions = list(b.exceptions)
    b.close()
    assert exceptions == [], f"uncaught exceptions in the page: {exceptions}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui") / "state").start()
    conn = layerserve.connect(proc.url, graph="vision")
    x = np.random.default_rng(0).normal(size=(8, 12, 12, 3)).astype(np.float32)
    y = layerserve.layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    y = layerserve.layers.MaxPooling2D(2, 2)(y)
    y = layerserve.layers.Flatten()(y)
    y = layerserve.layers.Dense(32, activation="relu", name="fc1")(y)
    y = layerserve.layers.BatchNormalization(name="bn")(y, training=True)
    layerserve.layers.Dense(10, name="logits")(y)
    conn.close()
    yield proc
    proc.stop()


def _apply_json(url: str, graph: str, layer: str, rows: int, cols: int, token: str | None = None) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"inputs": [{"dtype": "float32", "shape": [rows, cols], "data": [0.5] * (rows * cols)}]}
    response = httpx.post(f"{url}/v1/graphs/{graph}/layers/{layer}/apply", json=body, headers=headers)
    assert response.status_code == 200, response.text


def _number(text: str | None) -> float:
    assert text is not None
    return float(text.replace(",", ""))


def test_graphs_layers_and_variable_histograms(served: ServerProcess, browser: Browser) -> None:
    browser.goto(served.url + "/ui")
    browser.wait_for("!!document.querySelector('#graph-list li[data-graph=\"vision\"]')")
    browser.screenshot(ARTIFACTS / "home.png")
    browser.click('#graph-list li[data-graph="vision"] a')
    names = browser.wait_for("(() => { const rows = [...document.querySelectorAll('tr[data-layer] td:first-child')]; "
                             "return rows.length === 6 && rows.map((td) => td.textContent); })()")
    assert names == ["conv1", "max_pooling2d_1", "flatten_1", "fc1", "bn", "logits"]
    browser.wait_for("document.querySelector('#graph-summary').textContent.includes('6 layers')")
    browser.screenshot(ARTIFACTS / "layers.png")

    described = httpx.get(f"{served.url}/v1/graphs/vision/layers/fc1").json()
    browser.click(f'tr[data-layer="{described["id"]}"] a')
    browser.wait_for("document.querySelectorAll('.variable svg.histogram rect.bar').length >= 2")
    props = browser.evaluate("Object.fromEntries([...document.querySelectorAll('dd[data-prop]')]"
                             ".map((dd) => [dd.dataset.prop, dd.textContent]))")
    assert props["class"] == "Dense" and props["name"] == "fc1" and props["scope"] == "fc1"
    assert props["dtype"] == "float32" and props["trainable"] == "yes" and props["built"] == "yes"
    assert _number(props["count_params"]) == described["count_params"]
    assert props["provider"] == ", ".join(described["providers"])
    assert json.loads(browser.text("#layer-config") or "") == described["config"]

    stats = httpx.get(f"{served.url}/v1/graphs/vision/layers/fc1/statistics").json()["variables"]
    drawn = browser.evaluate("[...document.querySelectorAll('.variable')].map((card) => ({name: card.dataset.variable, "
                             "bars: [...card.querySelectorAll('rect.bar')].map((r) => Number(r.dataset.count)), "
                             "stats: Object.fromEntries([...card.querySelectorAll('[data-stat]')]"
                             ".map((s) => [s.dataset.stat, s.textContent]))}))")
    assert [d["name"] for d in drawn] == ["fc1/kernel:0", "fc1/bias:0"]
    kernel = drawn[0]
    assert kernel["bars"] == stats[0]["histogram"]["counts"] and sum(kernel["bars"]) == 200 * 32
    for key in ("min", "max", "mean", "std"):
        assert float(kernel["stats"][key]) == pytest.approx(stats[0][key], rel=2e-3, abs=1e-6)
    browser.screenshot(ARTIFACTS / "layer.png")


class _Traffic:
    """Applies to ``logits`` from a few threads at once for ``seconds`` (so the batcher gathers
    some), faster, then slower (so the curves have a shape); failures are kept for the test."""

    def __init__(self, url: str, seconds: float, clients: int = 4) -> None:
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(url, seconds), daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self, url: str, seconds: float) -> None:
        try:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                _apply_json(url, "vision", "logits", 4, 32)
                time.sleep(0.02 if left > seconds / 2 else 0.15)
        except BaseException as exc:
            self.errors.append(exc)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads)
        assert self.errors == []


def test_live_figures_move_after_applies(served: ServerProcess, browser: Browser) -> None:
    layer_id = httpx.get(f"{served.url}/v1/graphs/vision/layers/logits").json()["id"]
    browser.goto(f"{served.url}/ui#/g/vision/l/{layer_id}")
    before = _number(browser.wait_for("document.querySelector('[data-figure=\"total_requests\"]')?.textContent"))
    for _ in range(25):
        _apply_json(served.url, "vision", "logits", 4, 32)
    # No reload: the page refreshes its figures by itself.
    browser.wait_for(f"Number(document.querySelector('[data-figure=\"total_requests\"]').textContent"
                     f".replace(/,/g, '')) >= {before + 25}")
    rate = browser.wait_for("Number(document.querySelector('[data-figure=\"requests/s\"]').textContent) > 0 && "
                            "document.querySelector('[data-figure=\"requests/s\"]').textContent")
    assert float(rate) > 0
    assert "ms" in (browser.text('[data-figure="latency p50 / p99"]') or "")
    assert browser.evaluate("document.querySelectorAll('.live-card svg.bars rect.bar').length") >= 1
    _Traffic(served.url, 12.0).join()
    browser.wait_for("document.querySelectorAll('.live-card polyline.series.rps')[0]?.getAttribute('points')"
                     ".split(' ').length >= 6", timeout=20)
    browser.screenshot(ARTIFACTS / "layer-live.png")

    browser.goto(f"{served.url}/ui#/g/vision/live")
    traffic = _Traffic(served.url, 6.0)
    for _ in range(10):
        _apply_json(served.url, "vision", "fc1", 3, 200)
    browser.wait_for(f"!!document.querySelector('.live-table tr[data-layer=\"{layer_id}\"]')")
    browser.wait_for("document.querySelectorAll('.live-table tbody tr[data-layer]').length >= 2")
    traffic.join()
    browser.screenshot(ARTIFACTS / "live.png")


def test_a_thousand_layers_are_paged_and_filtered(served: ServerProcess, browser: Browser) -> None:
    with httpx.Client(base_url=served.url) as client:
        for i in range(1000):
            response = client.post("/v1/graphs/big/layers", json={"class": "Dense", "config": {"units": 4},
                                                                   "name": f"unit_{i:04d}"})
            assert response.status_code == 201
    browser.goto(f"{served.url}/ui#/g/big")
    browser.wait_for("document.querySelector('#layer-count')?.textContent === '1\u201350 of 1,000'", timeout=30)
    assert browser.evaluate("document.querySelectorAll('tr[data-layer]').length") == 50
    browser.click("#page-next")
    browser.wait_for("document.querySelector('#layer-count').textContent === '51\u2013100 of 1,000'")
    assert browser.text("tr[data-layer] td:first-child") == "unit_0050"
    browser.screenshot(ARTIFACTS / "layers-1000.png")
    browser.type_into("#layer-filter", "unit_09")
    browser.wait_for("document.querySelector('#layer-count').textContent === '1\u201350 of 100'")
    browser.type_into("#layer-filter", "unit_0999")
    browser.wait_for("document.querySelectorAll('tr[data-layer]').length === 1")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui-token") / "state", "--token", TOKEN).start()
    conn = layerserve.connect(proc.url, graph="secret_graph", token=TOKEN)
    layerserve.layers.Dense(3, name="hidden_layer")(np.ones((2, 2), np.float32))
    conn.close()
    yield proc
    proc.stop()


def test_with_a_token_the_page_refuses_until_it_is_given(guarded: ServerProcess, browser: Browser) -> None:
    browser.goto(guarded.url + "/ui")
    browser.wait_for("!document.querySelector('#login').hidden")
    assert browser.evaluate("document.querySelector('#app').hidden") is True
    assert "secret_graph" not in browser.evaluate("document.body.innerHTML")
    browser.screenshot(ARTIFACTS / "sign-in.png")

    browser.type_into("#token-input", "not-the-token")
    browser.click("#login-submit")
    browser.wait_for("document.querySelector('#login-error').textContent.includes('refused')")
    assert browser.evaluate("document.querySelector('#app').hidden") is True
    assert "secret_graph" not in browser.evaluate("document.body.innerHTML")

    browser.type_into("#token-input", TOKEN)
    browser.click("#login-submit")
    browser.wait_for("!!document.querySelector('#graph-list li[data-graph=\"secret_graph\"]')")
    browser.click('#graph-list li[data-graph="secret_graph"] a')
    browser.wait_for("[...document.querySelectorAll('tr[data-layer] td:first-child')]"
                     ".some((td) => td.textContent === 'hidden_layer')")
    browser.click('tr[data-layer] a')
    browser.wait_for("document.querySelectorAll('.variable svg.histogram rect.bar').length >= 2")

    # Signing out forgets the token: the state is gone from the page and a reload asks again.
    browser.click("#sign-out")
    browser.wait_for("!document.querySelector('#login').hidden")
    browser.goto(guarded.url + "/ui")
    browser.wait_for("!document.querySelector('#login').hidden")
    assert "secret_graph" not in browser.evaluate("document.body.innerHTML")


def _tf1_program(url: str) -> str:
    """A small TF1 training-style program run once through ``layerserve.compat.v1``; its server graph."""
    import layerserve.compat.v1 as tf

    tf.reset_default_graph()
    conn = layerserve.connect(url, graph="tf1")
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    labels = tf.placeholder(tf.float32, [None, 2], name="labels")
    hidden = tf.layers.dense(x, 4, activation=tf.nn.relu, name="fc")
    y = tf.layers.dense(hidden, 2, name="out")
    loss = tf.reduce_mean(tf.square(y - labels), name="loss")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(loss, {x: np.ones((5, 3), np.float32), labels: np.zeros((5, 2), np.float32)})
    graph = tf.get_default_graph().binding.conn.graph
    conn.close()
    return str(graph)


def test_a_program_is_drawn_as_a_graph_of_its_layers_and_ops(served: ServerProcess, browser: Browser) -> None:
    graph = _tf1_program(served.url)
    browser.goto(f"{served.url}/ui#/g/{graph}/programs")
    browser.wait_for("!!document.querySelector('tr[data-program] a')")
    browser.click("tr[data-program] a")
    browser.wait_for("document.querySelectorAll('svg.dag g.node').length >= 6")
    drawn = browser.evaluate("[...document.querySelectorAll('svg.dag g.node')].map((g) => "
                             "[g.dataset.node, g.getAttribute('class')])")
    kinds = dict(drawn)
    assert kinds["x"] == "node kind-placeholder" and kinds["labels"] == "node kind-placeholder"
    layer_nodes = [name for name, cls in drawn if cls == "node kind-layer"]
    assert len(layer_nodes) == 2
    assert browser.evaluate("[...document.querySelectorAll('svg.dag g.kind-layer text.label')]"
                            ".map((t) => t.textContent).sort()") == ["fc", "out"]
    assert browser.evaluate("document.querySelectorAll('svg.dag path.edge').length") >= 6
    browser.screenshot(ARTIFACTS / "program.png")


def test_a_restore_from_the_page_brings_the_weights_back(served: ServerProcess, browser: Browser) -> None:
    kernel_url = f"{served.url}/v1/graphs/vision/variables/fc1/kernel:0"
    before = np.array(httpx.get(kernel_url).json()["values"][0]["data"], np.float32)
    browser.goto(f"{served.url}/ui#/g/vision/checkpoints")
    browser.wait_for("!!document.querySelector('#checkpoint-name')")
    browser.type_into("#checkpoint-name", "known-good")
    browser.click("#checkpoint-create")
    browser.wait_for("!!document.querySelector('tr[data-checkpoint=\"known-good\"] button[data-restore]')")

    names = httpx.get(f"{served.url}/v1/graphs/vision/layers/fc1/weights").json()["names"]
    shapes = [tuple(v["shape"]) for v in httpx.get(f"{served.url}/v1/graphs/vision/layers/fc1/variables").json()["variables"]]
    assert len(names) == len(shapes) == 2
    weights = [{"dtype": "float32", "shape": list(s), "data": [0.25] * int(np.prod(s))} for s in shapes]
    assert httpx.put(f"{served.url}/v1/graphs/vision/layers/fc1/weights", json={"weights": weights}).status_code == 200
    changed = np.array(httpx.get(kernel_url).json()["values"][0]["data"], np.float32)
    assert np.all(changed == 0.25)

    browser.evaluate("window.confirm = () => true")  # the page asks before it restores
    browser.click('tr[data-checkpoint="known-good"] button[data-restore]')
    browser.wait_for("document.querySelector('#checkpoint-message').textContent.includes('Restored')")
    after = np.array(httpx.get(kernel_url).json()["values"][0]["data"], np.float32)
    np.testing.assert_array_equal(after, before)
    browser.screenshot(ARTIFACTS / "checkpoints.png")

    # The layer's page shows the restored weights' figures, and the history names the restore.
    described = httpx.get(f"{served.url}/v1/graphs/vision/layers/fc1").json()
    browser.goto(f"{served.url}/ui#/g/vision/l/{described['id']}")
    shown_max = browser.wait_for("document.querySelector('.variable[data-variable=\"fc1/kernel:0\"] "
                                 "[data-stat=\"max\"]')?.textContent")
    assert float(shown_max) == pytest.approx(float(before.max()), rel=1e-3)
    browser.goto(f"{served.url}/ui#/g/vision/versions")
    browser.wait_for("[...document.querySelectorAll('tr[data-version] td')].some((td) => "
                     "td.textContent.includes('known-good'))")
    browser.screenshot(ARTIFACTS / "versions.png")
