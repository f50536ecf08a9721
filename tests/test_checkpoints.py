"""Server-side named checkpoints: snapshot, list, describe, delete, restore, download and upload
as TensorFlow's files, hostile uploads, pinned serving and the version history, through a real
server (state directory, and Redis for persistence)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import layerserve
from layerserve import checkpoint
from layerserve.checkpoint import BundleEntry
from layerserve.exceptions import InvalidArgumentError, NotFoundError
from tests.redis_server import RedisProcess, redis_process  # noqa: F401 - fixture
from tests.server import ServerProcess

DATA = Path(__file__).parent / "data" / "checkpoints"
TF_PREFIX = DATA / "mlp_adam-3"


def _mlp(conn: layerserve.Connection, x: np.ndarray) -> tuple[Any, Any]:
    """The layers of tests/checkpoints/generate.py's program, built by one apply."""
    fc = conn.layers.Dense(4, activation="relu", name="fc")
    out = conn.layers.Dense(2, name="out")
    out.apply(fc.apply(x))
    return fc, out


def _forward(fc: Any, out: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(out.apply(fc.apply(x)))


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _tf_files() -> tuple[bytes, bytes]:
    return (Path(str(TF_PREFIX) + checkpoint.INDEX_SUFFIX).read_bytes(),
            Path(str(TF_PREFIX) + checkpoint.DATA_SUFFIX).read_bytes())


def _weights(conn: layerserve.Connection) -> dict[str, np.ndarray]:
    return {v.name: np.asarray(v.numpy()) for v in conn.global_variables()}


def test_snapshot_restore_download(conn: layerserve.Connection, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    fc, out = _mlp(conn, x)
    before, y_before = _weights(conn), _forward(fc, out, x)
    meta = conn.create_checkpoint("base")
    assert meta["name"] == "base" and {v["name"] for v in meta["variables"]} == set(before)
    fc.set_weights([np.zeros((3, 4), np.float32), np.ones(4, np.float32)])
    assert not np.allclose(_forward(fc, out, x), y_before)
    assert [c["name"] for c in conn.list_checkpoints()] == ["base"]
    assert conn.describe_checkpoint("base")["version"] == meta["version"]

    with pytest.raises(layerserve.exceptions.LayerServeError) as stale:
        conn.restore_checkpoint("base", if_match=meta["version"])  # set_weights moved the graph on since
    assert stale.value.status == 409 and stale.value.code == "version_conflict"
    restored = conn.restore_checkpoint("base", if_match=conn.versions()["version"])
    assert sorted(restored["variables"]) == sorted(before)
    np.testing.assert_array_equal(_forward(fc, out, x), y_before)
    for name, value in _weights(conn).items():
        np.testing.assert_array_equal(value, before[name])

    prefix = conn.download_checkpoint("base", tmp_path / "base")
    assert {k + ":0": v for k, v in checkpoint.read_checkpoint(prefix).items()}.keys() == before.keys()
    history = conn.versions()
    causes = [v["cause"] for v in history["versions"]]
    assert causes[-2:] == ["set_weights", "restore"] and history["versions"][-1]["checkpoint"] == "base"
    assert history["version"] == restored["version"] == history["versions"][-1]["version"]
    assert history["checkpoints"] == [{"name": "base", "version": meta["version"]}]


def test_checkpoints_are_immutable_and_named(conn: layerserve.Connection, server: ServerProcess) -> None:
    _mlp(conn, np.ones((1, 3), np.float32))
    conn.create_checkpoint("a")
    with pytest.raises(layerserve.exceptions.LayerServeError) as exists:
        conn.create_checkpoint("a")
    assert exists.value.status == 409 and exists.value.code == "checkpoint_exists"
    for bad in ("..", ".hidden", "1", "live", "a" * 200, "sp ace"):
        response = httpx.post(f"{server.url}/v1/graphs/{conn.graph}/checkpoints", json={"name": bad})
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_name", bad
    for method in ("GET", "DELETE"):  # a graph name becomes a directory name: checked first
        odd = httpx.request(method, f"{server.url}/v1/graphs/%2E%2E/checkpoints/a")
        assert odd.status_code == 422 and odd.json()["error"]["code"] == "invalid_name", method
    conn.delete_checkpoint("a")
    with pytest.raises(NotFoundError):
        conn.describe_checkpoint("a")
    with pytest.raises(NotFoundError):
        conn.restore_checkpoint("a")
    assert conn.list_checkpoints() == []


def test_tensorflow_checkpoint_gives_tensorflows_outputs(conn: layerserve.Connection) -> None:
    """A checkpoint TF1's Saver wrote (with Adam slots and global_step) restored into the same layers."""
    recorded = np.load(DATA / "mlp_adam.npz")
    fc, out = _mlp(conn, recorded["x"])
    uploaded = conn.upload_checkpoint("trained", TF_PREFIX)
    assert {v["name"] for v in uploaded["variables"]} >= {"fc/kernel/Adam:0", "global_step:0"}
    conn.restore_checkpoint("trained")
    np.testing.assert_allclose(_forward(fc, out, recorded["x"]), recorded["y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(fc.get_weights()[0], recorded["var:fc/kernel"])


def test_restore_errors_are_tensorflows_and_change_nothing(conn: layerserve.Connection, tmp_path: Path) -> None:
    recorded = np.load(DATA / "mlp_adam.npz")
    _mlp(conn, recorded["x"])
    extra = conn.layers.Dense(3, name="extra_layer")
    extra.apply(recorded["x"])
    conn.upload_checkpoint("trained", TF_PREFIX)
    before = _weights(conn)
    version = conn.versions()["version"]
    with pytest.raises(NotFoundError) as missing:
        conn.restore_checkpoint("trained")
    assert "Key extra_layer/bias not found in checkpoint" in str(missing.value) or \
        "Key extra_layer/kernel not found in checkpoint" in str(missing.value)
    assert str(missing.value).startswith("Restoring from checkpoint failed. This is most likely due to a Variable")
    assert missing.value.details["exception"] == "NotFoundError"

    index, data = _tf_files()
    entries = checkpoint.read_index(index)
    tensors = checkpoint.decode_bundle(index, data)
    tensors["fc/kernel"] = np.zeros((3, 5), np.float32)
    tensors.update({"extra_layer/kernel": np.zeros((3, 3), np.float32), "extra_layer/bias": np.zeros(3, np.float32)})
    checkpoint.write_checkpoint(tmp_path / "wide", tensors)
    conn.upload_checkpoint("wide", tmp_path / "wide")
    with pytest.raises(InvalidArgumentError) as shape:
        conn.restore_checkpoint("wide")
    assert "fc/kernel:0" in str(shape.value) and "[3, 4]" in str(shape.value) and "[3, 5]" in str(shape.value)
    assert entries["fc/kernel"].shape == (3, 4)
    after = _weights(conn)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert conn.versions()["version"] == version


def _hostile_uploads() -> dict[str, tuple[bytes, str]]:
    index, data = _tf_files()
    broken = bytearray(data)
    broken[0] ^= 1
    huge = BundleEntry("fc/kernel", "float32", (2**40, 2**40), 0, 16, checkpoint.masked_crc32c(bytes(16)))
    bad_name = {"../../etc/passwd": np.zeros(2, np.float32)}
    bad_index, bad_data = checkpoint.encode_bundle(bad_name)
    return {
        "truncated index": (_tar({"m.index": index[:-10], "m.data-00000-of-00001": data}), "invalid_checkpoint"),
        "wrong crc": (_tar({"m.index": index, "m.data-00000-of-00001": bytes(broken)}), "invalid_checkpoint"),
        "terabyte shape": (_tar({"m.index": checkpoint.encode_index([huge]), "m.data-00000-of-00001": bytes(16)}),
                           "invalid_checkpoint"),
        "bad name": (_tar({"m.index": bad_index, "m.data-00000-of-00001": bad_data}), "invalid_checkpoint"),
        "no data file": (_tar({"m.index": index}), "invalid_checkpoint"),
        "extra member": (_tar({"m.index": index, "m.data-00000-of-00001": data, "x.sh": b"!"}), "invalid_checkpoint"),
        "not a tar": (b"\x00garbage" * 100, "invalid_checkpoint"),
    }


def test_hostile_uploads_change_nothing(conn: layerserve.Connection, server: ServerProcess) -> None:
    _mlp(conn, np.ones((2, 3), np.float32))
    before, version = _weights(conn), conn.versions()["version"]
    for case, (body, code) in _hostile_uploads().items():
        response = httpx.put(f"{server.url}/v1/graphs/{conn.graph}/checkpoints/up",
                             content=body, headers={"content-type": "application/x-tar"})
        assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
        assert response.json()["error"]["code"] == code, case
        assert response.json()["error"]["message"], case
    wrong_type = httpx.put(f"{server.url}/v1/graphs/{conn.graph}/checkpoints/up", content=b"{}",
                           headers={"content-type": "application/json"})
    assert wrong_type.status_code == 415
    assert conn.list_checkpoints() == []
    after = _weights(conn)
    assert all(np.array_equal(after[k], before[k]) for k in before) and conn.versions()["version"] == version


def test_pinned_serving_beside_the_live_weights(conn: layerserve.Connection, server: ServerProcess) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = conn.layers.Dense(2, name="canary", kernel_initializer="ones")
    y_old = np.asarray(layer.apply(x))
    conn.create_checkpoint("v1")
    layer.set_weights([np.full((3, 2), 2.0, np.float32), np.zeros(2, np.float32)])
    y_new = np.asarray(layer.apply(x))
    assert not np.allclose(y_old, y_new)
    tensor = {"dtype": "float32", "shape": [2, 3], "data": x.ravel().tolist()}
    base = f"{server.url}/v1/graphs/{conn.graph}/layers/canary/apply"
    pinned = httpx.post(base, json={"inputs": [tensor], "checkpoint": "v1"})
    assert pinned.status_code == 200, pinned.text
    np.testing.assert_allclose(np.asarray(pinned.json()["outputs"][0]["data"]).reshape(2, 2), y_old)
    live = httpx.post(base, json={"inputs": [tensor]})
    np.testing.assert_allclose(np.asarray(live.json()["outputs"][0]["data"]).reshape(2, 2), y_new)

    model = f"{conn.graph}.canary"
    oip = {"inputs": [{"name": "input_0", "shape": [2, 3], "datatype": "FP32", "data": x.ravel().tolist()}]}
    for version, expected in (("v1", y_old), ("1", y_new)):
        answer = httpx.post(f"{server.url}/v2/models/{model}/versions/{version}/infer", json=oip)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
        np.testing.assert_allclose(np.asarray(answer.json()["outputs"][0]["data"]).reshape(2, 2), expected)
    assert httpx.get(f"{server.url}/v2/models/{model}").json()["versions"] == ["1", "v1"]
    assert httpx.get(f"{server.url}/v2/models/{model}/versions/v1").json()["name"] == model
    assert httpx.get(f"{server.url}/v2/models/{model}/versions/v2").status_code == 404
    missing = httpx.post(f"{server.url}/v2/models/{model}/versions/nope/infer", json=oip)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    np.testing.assert_allclose(np.asarray(layer.apply(x)), y_new)  # pinned applies changed nothing


def test_history_retention_keeps_checkpointed_versions(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", "--keep-history", "3").start()
    try:
        conn = layerserve.Connection(server.url, graph="hist")
        layer = conn.layers.Dense(1, name="d")
        layer.apply(np.ones((1, 2), np.float32))
        conn.create_checkpoint("early")
        early = conn.describe_checkpoint("early")["version"]
        for k in range(40):
            layer.set_weights([np.full((2, 1), k, np.float32), np.zeros(1, np.float32)])
        history = conn.versions()
        versions = [v["version"] for v in history["versions"]]
        assert versions == [early, history["version"] - 2, history["version"] - 1, history["version"]]
        assert [v["cause"] for v in history["versions"][1:]] == ["set_weights"] * 3
        conn.close()
    finally:
        server.stop()


@pytest.mark.parametrize("store", ["filesystem", "redis"])
def test_checkpoints_survive_restart(tmp_path: Path, store: str, redis_process: RedisProcess) -> None:  # noqa: F811
    args = ["--store", redis_process.url] if store == "redis" else []
    graph = f"persist_{store}"
    server = ServerProcess(tmp_path / "state", *args).start()
    try:
        conn = layerserve.Connection(server.url, graph=graph)
        layer = conn.layers.Dense(2, name="d", kernel_initializer="ones")
        layer.apply(np.ones((1, 2), np.float32))
        conn.create_checkpoint("kept")
        layer.set_weights([np.zeros((2, 2), np.float32), np.zeros(2, np.float32)])
        conn.close()
    finally:
        server.kill()
    server = ServerProcess(tmp_path / "state", *args).start()
    try:
        conn = layerserve.Connection(server.url, graph=graph)
        assert [c["name"] for c in conn.list_checkpoints()] == ["kept"]
        conn.restore_checkpoint("kept")
        weights = {v.name: v.numpy() for v in conn.global_variables()}
        np.testing.assert_array_equal(weights["d/kernel:0"], np.ones((2, 2), np.float32))
        assert json.dumps(conn.versions()["versions"][-1]["cause"]) == '"restore"'
        conn.close()
    finally:
        server.stop()


def _uniform_value(weights: dict[str, np.ndarray]) -> float:
    """The one value every variable holds everywhere; fails on a mix of two checkpoints."""
    values = {float(v) for array in weights.values() for v in np.unique(array)}
    assert len(values) == 1, f"variables mix checkpoints: {sorted(values)}"
    return values.pop()


def _restore_loop(url: str, graph: str, acked: list[float], errors: list[BaseException], stop: Any) -> None:
    """Restore A and B in turn until the server dies; ``acked``: the value of each acknowledged restore."""
    with httpx.Client(base_url=url, timeout=10) as client:
        k = 0
        while not stop.is_set():
            name, value = ("A", 1.0) if k % 2 == 0 else ("B", 2.0)
            try:
                response = client.post(f"/v1/graphs/{graph}/checkpoints/{name}:restore")
            except httpx.TransportError:
                return
            except BaseException as exc:
                errors.append(exc)
                return
            if response.status_code != 200:
                errors.append(AssertionError(response.text))
                return
            acked.append(value)
            k += 1


def _apply_loop(url: str, graph: str, seen: set[float], errors: list[BaseException], stop: Any) -> None:
    """Applies while restores run: each sees all of A (8*1 + 1) or all of B (8*2 + 2)."""
    body = {"inputs": [{"dtype": "float32", "shape": [1, 8], "data": [1.0] * 8}]}
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                response = client.post(f"/v1/graphs/{graph}/layers/w/apply", json=body)
            except httpx.TransportError:
                return
            try:
                outputs = set(response.json()["outputs"][0]["data"])
                assert outputs <= {9.0, 18.0} and len(outputs) == 1, f"an apply mixed weights: {outputs}"
                seen |= outputs
            except BaseException as exc:
                errors.append(exc)
                return


@pytest.mark.parametrize("store", ["filesystem", "redis"])
def test_sigkill_during_restore_loops(tmp_path: Path, store: str, redis_process: RedisProcess) -> None:  # noqa: F811
    """kill -9 while restores of two checkpoints alternate: after the restart every variable is
    from one checkpoint or the other, at least the last acknowledged one's successor or itself."""
    import random
    import threading
    import time

    args = ["--store", redis_process.url] if store == "redis" else []
    graph, rng = f"kill_{store}", random.Random(5)
    server = ServerProcess(tmp_path / "state", *args).start()
    conn = layerserve.Connection(server.url, graph=graph)
    w, v = conn.layers.Dense(4, name="w"), conn.layers.Dense(3, name="v")
    w.apply(np.ones((1, 8), np.float32))
    v.apply(np.ones((1, 2), np.float32))
    for name, value in (("A", 1.0), ("B", 2.0)):
        for layer in (w, v):
            layer.set_weights([np.full(a.shape, value, np.float32) for a in layer.get_weights()])
        conn.create_checkpoint(name)
    conn.close()
    seen: set[float] = set()
    for _ in range(4):
        acked: list[float] = []
        errors: list[BaseException] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_restore_loop, args=(server.url, graph, acked, errors, stop)),
                   threading.Thread(target=_apply_loop, args=(server.url, graph, seen, errors, stop))]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.3, 1.0))
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert acked, "no restore was acknowledged before the kill"
        server = ServerProcess(tmp_path / "state", *args).start()
        with layerserve.Connection(server.url, graph=graph) as check:
            value = _uniform_value({x.name: np.asarray(x.numpy()) for x in check.global_variables()})
        assert value in (acked[-1], 3.0 - acked[-1])
    server.stop()
    assert seen == {9.0, 18.0}


def test_tensorflow_saver_restores_a_download(conn: layerserve.Connection, tmp_path: Path) -> None:
    """The reverse direction: weights set on the server, downloaded, restored by TF1's own
    ``Saver`` into the same program, give the server's outputs."""
    import os
    import subprocess
    import textwrap

    from tests.test_checkpoint_format import _tensorflow_python

    python = _tensorflow_python()
    if python is None:
        pytest.skip("TensorFlow is not importable here; set LAYERSERVE_TF_PYTHON to a Python that has it")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    fc, out = _mlp(conn, x)
    fc.set_weights([rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)])
    served = _forward(fc, out, x)
    conn.create_checkpoint("export")
    prefix = conn.download_checkpoint("export", tmp_path / "export")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        V1 = tf.compat.v1
        V1.disable_eager_execution()
        x = V1.placeholder(tf.float32, [None, 3])
        y = V1.layers.dense(V1.layers.dense(x, 4, activation=tf.nn.relu, name="fc"), 2, name="out")
        with V1.Session() as sess:
            V1.train.Saver().restore(sess, {prefix!r})
            np.save({str(tmp_path / 'y.npy')!r}, sess.run(y, {{x: np.load({str(tmp_path / 'x.npy')!r})}}))
    """)
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), served, rtol=1e-5, atol=1e-6)


async def test_async_connection_checkpoints(server: ServerProcess, tmp_path: Path) -> None:
    sync = layerserve.Connection(server.url, graph="async_ckpt")
    layer = sync.layers.Dense(2, name="d", kernel_initializer="ones")
    layer.apply(np.ones((1, 2), np.float32))
    async with layerserve.AsyncConnection(server.url, graph="async_ckpt") as conn:
        created = await conn.create_checkpoint("a")
        layer.set_weights([np.zeros((2, 2), np.float32), np.zeros(2, np.float32)])
        assert [c["name"] for c in await conn.list_checkpoints()] == ["a"]
        assert (await conn.describe_checkpoint("a"))["version"] == created["version"]
        prefix = await conn.download_checkpoint("a", tmp_path / "a")
        assert (await conn.upload_checkpoint("b", prefix))["source"] == "upload"
        restored = await conn.restore_checkpoint("b", if_match=(await conn.versions())["version"])
        assert (await conn.versions())["versions"][-1] == {**(await conn.versions())["versions"][-1],
                                                           "cause": "restore", "checkpoint": "b",
                                                           "version": restored["version"]}
        await conn.delete_checkpoint("a")
        with pytest.raises(NotFoundError):
            await conn.download_checkpoint("a", tmp_path / "gone")
    np.testing.assert_array_equal(layer.get_weights()[0], np.ones((2, 2), np.float32))
    sync.close()
