"""TF1 graph mode (``layerserve.compat.v1``) through a real server: names, reuse, collections,
what ``Session.run`` returns, and the errors TF raises (tf1-graph-mode.md §1-§4, §9)."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import layerserve
import layerserve.compat.v1 as tf
from tests.server import ServerProcess


@pytest.fixture
def graph(server: ServerProcess) -> Iterator[layerserve.Connection]:
    conn = layerserve.connect(server.url, graph=f"tf1-{uuid.uuid4().hex[:12]}")
    tf.reset_default_graph()
    yield conn
    conn.close()


def _names(items: list[Any]) -> list[str]:
    return [i.name for i in items]


# ---- names (§1) ---------------------------------------------------------------------------------
def test_names_in_nested_scopes(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    assert x.name == "x:0" and x.shape.as_list() == [None, 3]
    with tf.variable_scope("a"):
        v = tf.get_variable("v", [2], initializer=tf.zeros_initializer())
        with tf.variable_scope("b"):
            w = tf.get_variable("w", [2])
            t = tf.identity(x, name="t")
        with tf.name_scope("ns"):
            u = tf.get_variable("u", [1])
            y = x + 1
            d = tf.layers.dense(x, 2)
    assert (v.name, w.name, t.name, u.name, y.name) == ("a/v:0", "a/b/w:0", "a/b/t:0", "a/u:0", "a/ns/add:0")
    assert d.name == "a/ns/dense/BiasAdd:0"
    assert _names(tf.global_variables())[-2:] == ["a/dense/kernel:0", "a/dense/bias:0"]


def test_reentered_scope_keeps_variable_names_and_moves_op_names(graph: layerserve.Connection) -> None:
    with tf.variable_scope("a") as scope:
        tf.get_variable("v", [1])
    with tf.variable_scope("a", reuse=True):
        same = tf.get_variable("v", [1])
        op = tf.constant(1.0) * 2.0
    with tf.variable_scope(scope, reuse=True):
        by_object = tf.get_variable("v")
        op2 = tf.identity(op)
    assert same is by_object and same.name == "a/v:0"
    assert op.name.startswith("a_1/") and op2.name.startswith("a_2/")


def test_default_names_and_unnamed_layers(graph: layerserve.Connection) -> None:
    scopes = []
    for _ in range(3):
        with tf.variable_scope(None, default_name="blk") as s:
            scopes.append(s.name)
    with tf.variable_scope("outer"):
        with tf.variable_scope(None, default_name="blk") as s:
            scopes.append(s.name)
    with tf.variable_scope("given", default_name="blk") as s:
        scopes.append(s.name)
    assert scopes == ["blk", "blk_1", "blk_2", "outer/blk", "given"]
    x = tf.placeholder(tf.float32, [None, 4])
    tf.layers.dense(x, 2)
    tf.layers.dense(x, 2)
    assert _names(tf.global_variables()) == ["dense/kernel:0", "dense/bias:0", "dense_1/kernel:0", "dense_1/bias:0"]


def test_layer_families_in_a_scope(graph: layerserve.Connection) -> None:
    img = tf.placeholder(tf.float32, [None, 8, 8, 3])
    with tf.variable_scope("net"):
        h = tf.layers.conv2d(img, 4, 3)
        h = tf.layers.batch_normalization(h)
        tf.layers.separable_conv2d(h, 2, 3)
    assert _names(tf.global_variables()) == [
        "net/conv2d/kernel:0", "net/conv2d/bias:0", "net/batch_normalization/gamma:0",
        "net/batch_normalization/beta:0", "net/batch_normalization/moving_mean:0",
        "net/batch_normalization/moving_variance:0", "net/separable_conv2d/depthwise_kernel:0",
        "net/separable_conv2d/pointwise_kernel:0", "net/separable_conv2d/bias:0"]


def test_layer_scope_is_taken_at_first_call(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 2])
    with tf.variable_scope("outer"):
        layer = tf.layers.Dense(3, name="m")
    layer(x)
    assert _names(layer.variables) == ["m/kernel:0", "m/bias:0"]


def test_custom_layer_subclass_names(graph: layerserve.Connection) -> None:
    class Scale(tf.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.k = self.add_weight("k", [int(input_shape[-1])], initializer=tf.ones_initializer())

        def call(self, inputs: Any) -> Any:
            return inputs * self.k

    x = tf.placeholder(tf.float32, [None, 2])
    first, second = Scale(), Scale()
    first(x)
    second(x)
    with tf.variable_scope("blk"):
        third = Scale()
        third(x)
    assert [first.scope_name, second.scope_name] == ["scale", "scale_1"]
    assert _names(first.variables + second.variables + third.variables) == ["scale/k:0", "scale_1/k:0",
                                                                            "blk/scale/k:0"]


# ---- reuse (§2) ---------------------------------------------------------------------------------
def test_reuse_rules_and_their_errors(graph: layerserve.Connection) -> None:
    with tf.variable_scope("a"):
        v = tf.get_variable("v", [2])
    with tf.variable_scope("a", reuse=True):
        assert tf.get_variable("v", [2]) is v
        with pytest.raises(ValueError, match=r"^Variable a/nope does not exist, or was not created with "
                                             r"tf.get_variable\(\). Did you mean to set reuse=tf.AUTO_REUSE in "
                                             r"VarScope\?"):
            tf.get_variable("nope", [1])
        with pytest.raises(ValueError, match=r"^Trying to share variable a/v, but specified shape \(3,\) and found "
                                             r"shape \(2,\)\."):
            tf.get_variable("v", [3])
        with tf.variable_scope("child") as child:
            assert child.reuse is True
    with tf.variable_scope("a"):
        with pytest.raises(ValueError, match=r"^Variable a/v already exists, disallowed. Did you mean to set "
                                             r"reuse=True or reuse=tf.AUTO_REUSE in VarScope\?"):
            tf.get_variable("v", [2])
    assert _names(tf.global_variables()) == ["a/v:0"]
    assert [v.name for v in graph.global_variables()] == ["a/v:0"]
    with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
        first = tf.get_variable("w", [1])
    with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
        assert tf.get_variable("w", [1]) is first


def test_named_layer_reuse_shares_hosted_variables(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    y1 = tf.layers.dense(x, 2, name="fc", kernel_initializer=tf.ones_initializer())
    y2 = tf.layers.dense(x, 2, name="fc", reuse=True)
    with pytest.raises(ValueError, match="Variable fc/kernel already exists, disallowed"):
        tf.layers.dense(x, 2, name="fc")
    with pytest.raises(ValueError, match=r"^Variable other/kernel does not exist, or was not created with "
                                         r"tf.get_variable\(\)"):
        tf.layers.dense(x, 2, name="other", reuse=True)
    assert _names(tf.global_variables()) == ["fc/kernel:0", "fc/bias:0"]  # nothing made by the failed calls
    assert [v.name for v in graph.global_variables()] == ["fc/kernel:0", "fc/bias:0"]
    with tf.Session() as sess:
        a, b = sess.run([y1, y2], {x: np.ones((1, 3), np.float32)})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.full((1, 2), 3.0, np.float32))


# ---- collections (§3) ---------------------------------------------------------------------------
def test_collections_by_scope_and_regularization_losses(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    tf.get_variable("other", [1])
    with tf.variable_scope("net"):
        tf.layers.dense(x, 2, kernel_regularizer=lambda w: 0.5 * tf.reduce_sum(w), trainable=False)
        tf.get_variable("g", [1], regularizer=lambda w: tf.reduce_sum(w) * 2.0)
    assert _names(tf.global_variables("oth")) == ["other:0"]
    assert _names(tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="net")) == ["net/g:0"]
    assert _names(tf.global_variables("net")) == ["net/dense/kernel:0", "net/dense/bias:0", "net/g:0"]
    regs = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(regs) == 2
    listed = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    listed.append("x")
    assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == [] and tf.get_collection("no such key") == []


# ---- Session.run (§4, §9) ------------------------------------------------------------------------
def test_run_returns_tf_structures_and_types(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    total = tf.reduce_sum(x, name="Sum")
    count = tf.size(x)
    best = tf.argmax(x, axis=1)
    flag = tf.equal(total, total)
    pair = collections.namedtuple("pair", "a b")
    with tf.Session() as sess:
        out = sess.run({"t": (total, [count, tf.no_op()]), "p": pair(best, flag), "s": "Sum:0"},
                       {x: np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert isinstance(out["t"], tuple) and isinstance(out["p"], pair)
    assert type(out["t"][0]) is np.float32 and out["t"][0] == 15.0 and out["s"] == 15.0
    assert type(out["t"][1][0]) is np.int32 and out["t"][1][0] == 6 and out["t"][1][1] is None
    assert out["p"].a.dtype == np.int64 and out["p"].a.tolist() == [2, 2]
    assert type(out["p"].b) is np.bool_


def test_feeding_a_computed_tensor_overrides_it(graph: layerserve.Connection) -> None:
    a = tf.constant([1.0, 2.0])
    b = a * 3.0
    with tf.Session() as sess:
        assert sess.run(b).tolist() == [3.0, 6.0]
        assert sess.run(b, {a: np.array([0.0, 1.0], np.float32)}).tolist() == [0.0, 3.0]


def test_assign_ops_return_the_new_value_and_persist(graph: layerserve.Connection) -> None:
    v = tf.get_variable("v", initializer=tf.constant([1.0, 2.0]))
    doubled = v.assign(v * 2.0)
    add = tf.assign_add(v, [1.0, 1.0])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(doubled).tolist() == [2.0, 4.0]
        assert sess.run(add).tolist() == [3.0, 5.0]
        assert sess.run(tf.group(v.assign_sub([1.0, 1.0]))) is None
        assert sess.run(v).tolist() == [2.0, 4.0]
    listed = {d.name: d for d in graph.global_variables()}
    np.testing.assert_array_equal(listed["v:0"].numpy(), [2.0, 4.0])


def test_control_dependencies_run_the_update_first_each_run(graph: layerserve.Connection) -> None:
    counter = tf.get_variable("counter", initializer=tf.constant(0.0))
    x = tf.placeholder(tf.float32, [])
    with tf.control_dependencies([counter.assign_add(1.0)]):
        y = tf.identity(x)
    with tf.Session() as sess:
        for k in range(3):
            assert sess.run(y, {x: float(k)}) == float(k)
        assert sess.run(counter) == 3.0


def test_a_writing_program_runs_at_several_feed_shapes(graph: layerserve.Connection) -> None:
    """Each new feed shape composes the registered program again: the composition must not
    change the program it started from."""
    total = tf.get_variable("total", initializer=tf.constant(0.0))
    x = tf.placeholder(tf.float32, [None])
    add = total.assign_add(tf.reduce_sum(x))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for n in (2, 3, 2, 5):
            sess.run(add, {x: np.ones(n, np.float32)})
        assert sess.run(total) == 12.0


def test_a_rest_run_with_a_feed_of_another_shape_is_refused_as_tf_refuses_it(graph: layerserve.Connection) -> None:
    """The Python client checks feeds as TF's ``Session.run`` does; a REST caller gets the same
    check from the server, before the program is composed for that shape."""
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.reduce_sum(x, name="y")
    with tf.Session() as sess:
        assert sess.run(y, {x: np.ones((2, 3), np.float32)}) == 6.0
    (program,) = tf.get_default_graph().binding.programs.values()
    for bad in (np.ones((2, 4), np.float32), np.ones(3, np.float32)):
        with pytest.raises(ValueError, match=r"Cannot feed value of shape .* for Tensor x:0, which has shape \(None, 3\)"):
            graph.call("POST", f"/v1/graphs/{graph.graph}/programs/{program}:run", {"feeds": ["x:0"], "fetches": ["y:0"]},
                       tensors=[bad], accept_tensors=True, request_key="values")


def test_graph_mode_layers_are_hosted_layers(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    with tf.variable_scope("net"):
        tf.layers.dense(x, 2, name="hidden")
        tf.get_variable("extra", [2])
    listed = graph.list_layers()
    assert [(layer.name, layer.scope_name) for layer in listed] == [("hidden", "net/hidden")]
    assert [v.name for v in graph.global_variables()] == ["net/hidden/kernel:0", "net/hidden/bias:0",
                                                          "net/extra:0"]


# ---- errors (issue 13 item 6) ----------------------------------------------------------------------
def test_unfed_placeholder_is_invalid_argument(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError,
                                             match=r"^You must feed a value for placeholder tensor 'x' with dtype "
                                                   r"float and shape \[\?,3\]"):
        sess.run(x * 2.0)


def test_wrong_feed_shape_is_value_error(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    with tf.Session() as sess, pytest.raises(ValueError, match=r"^Cannot feed value of shape \(2, 4\) for Tensor "
                                                               r"Placeholder:0, which has shape \(None, 3\)$"):
        sess.run(x + 1.0, {x: np.zeros((2, 4), np.float32)})


def test_fetch_of_another_graph_and_closed_session(graph: layerserve.Connection) -> None:
    other = tf.Graph()
    with other.as_default():
        foreign = tf.constant(1.0)
    tf.constant(2.0)
    sess = tf.Session()
    with pytest.raises(ValueError, match="is not an element of this graph"):
        sess.run(foreign)
    sess.close()
    with pytest.raises(RuntimeError, match=r"^Attempted to use a closed Session\.$"):
        sess.run(tf.constant(3.0))


def test_failed_run_changes_nothing(graph: layerserve.Connection) -> None:
    v = tf.get_variable("v", initializer=tf.constant([1.0, 2.0]))
    shape = tf.placeholder(tf.int32, [2])
    broken = v.assign(tf.reshape(v * 10.0, shape))
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError):
            sess.run(broken, {shape: np.array([3, 5], np.int32)})
        assert sess.run(v).tolist() == [1.0, 2.0]


def test_an_op_the_server_cannot_run_is_refused_at_registration(graph: layerserve.Connection,
                                                                server: ServerProcess) -> None:
    import base64

    import httpx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"])
    model = helper.make_model(helper.make_graph([node], "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                            [1])],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    body = {"model": base64.b64encode(model.SerializeToString()).decode()}
    answer = httpx.post(f"{server.url}/v1/graphs/{graph.graph}/programs", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unsupported_op" and "NoSuchOp" in error["message"]
    assert graph.list_layers() == [] and graph.global_variables() == []


# ---- gradients (expanded on the server) -------------------------------------------------------------
def test_gradients_of_a_dense_layer_and_a_variable(graph: layerserve.Connection) -> None:
    rng = np.random.default_rng(3)
    k0, x0 = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 3])
    scale = tf.get_variable("scale", initializer=tf.constant([2.0, -1.0]))
    y = tf.layers.dense(x, 2, kernel_initializer=tf.constant_initializer(k0), name="fc") * scale
    loss = tf.reduce_sum(tf.square(y))
    kernel, bias = tf.global_variables()[1:3]
    blocked = tf.stop_gradient(scale) * 3.0
    grads = tf.gradients(loss, [kernel, bias, scale, x])
    assert tf.gradients(tf.reduce_sum(blocked), [scale]) == [None]
    with tf.Session() as sess:
        gk, gb, gs, gx = sess.run(grads, {x: x0})
    s = np.array([2.0, -1.0], np.float32)
    pre = x0 @ k0
    dy = 2 * pre * s
    np.testing.assert_allclose(gk, x0.T @ (dy * s), rtol=1e-5)
    np.testing.assert_allclose(gb, (dy * s).sum(0), rtol=1e-5)
    np.testing.assert_allclose(gs, (2 * pre * s * pre).sum(0), rtol=1e-5)
    np.testing.assert_allclose(gx, (dy * s) @ k0.T, rtol=1e-5)


def test_gradients_reach_a_convolution_kernel_stored_in_tf_layout(graph: layerserve.Connection) -> None:
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((2, 4, 4, 1)).astype(np.float32)
    k0 = rng.standard_normal((2, 2, 1, 3)).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 4, 4, 1])
    y = tf.layers.conv2d(x, 3, 2, kernel_initializer=tf.constant_initializer(k0), use_bias=False)
    loss = tf.reduce_sum(tf.square(y))
    (kernel,) = tf.trainable_variables()
    with tf.Session() as sess:
        (grad,) = sess.run(tf.gradients(loss, [kernel]), {x: x0})
    patches = np.stack([x0[:, i:i + 2, j:j + 2, :] for i in range(3) for j in range(3)], axis=1)  # b, 9, 2, 2, 1
    out = np.einsum("bpijc,ijco->bpo", patches, k0)
    expected = np.einsum("bpijc,bpo->ijco", patches, 2 * out)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def _bytes_counters(server: ServerProcess) -> tuple[float, float]:
    import httpx

    text = httpx.get(f"{server.url}/metrics").text
    route = 'route="/v1/graphs/{graph}/programs/{program}:run"'
    found = {}
    for line in text.splitlines():
        if route in line and line.startswith(("layerserve_request_bytes_total", "layerserve_response_bytes_total")):
            found[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return found.get("layerserve_request_bytes_total", 0.0), found.get("layerserve_response_bytes_total", 0.0)


def test_a_repeated_run_sends_the_feeds_and_at_most_1kb(graph: layerserve.Connection, server: ServerProcess) -> None:
    x = tf.placeholder(tf.float32, [None, 256], name="x")
    with tf.variable_scope("a_rather_long_scope_name_for_the_fetches"):
        y = tf.layers.dense(tf.layers.dense(x, 256, name="first"), 64, name="second")
    batch = np.ones((64, 256), np.float32)
    with tf.Session() as sess:
        sess.run(y, {x: batch})  # registers the program
        sent, answered = _bytes_counters(server)
        sess.run(y, {x: batch})
        sent_after, answered_after = _bytes_counters(server)
    assert 0 < sent_after - sent <= batch.nbytes + 1024
    assert 0 < answered_after - answered <= 64 * 64 * 4 + 1024


# ---- programs as models ------------------------------------------------------------------------------
def test_an_exported_program_is_an_oip_model_and_an_onnx_file(graph: layerserve.Connection,
                                                               server: ServerProcess) -> None:
    import httpx
    import onnxruntime as ort
    import tritonclient.http as triton

    rng = np.random.default_rng(9)
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    with tf.variable_scope("clf"):
        h = tf.layers.dense(x, 8, activation=tf.nn.relu, kernel_initializer=tf.constant_initializer(
            rng.standard_normal((4, 8)).astype(np.float32)))
        h = tf.layers.batch_normalization(h, training=False)
        logits = tf.layers.dense(h, 3)
    probs, label = tf.nn.softmax(logits), tf.argmax(logits, axis=1)
    batch = rng.standard_normal((5, 4)).astype(np.float32)
    with tf.Session() as sess:
        model = tf.export(sess, "classifier", inputs={"features": x}, outputs={"probs": probs, "label": label})
        want_probs, want_label = sess.run([probs, label], {x: batch})
    assert model == f"{graph.graph}.classifier"

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inp = triton.InferInput("features", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch, binary_data=True)
    result = client.infer(model, [inp], outputs=[triton.InferRequestedOutput("probs", binary_data=True),
                                                 triton.InferRequestedOutput("label", binary_data=True)])
    np.testing.assert_allclose(result.as_numpy("probs"), want_probs, rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), want_label)
    assert [i["name"] for i in client.get_model_metadata(model)["inputs"]] == ["features"]

    data = httpx.get(f"{server.url}/v1/graphs/{graph.graph}/programs/classifier/onnx").content
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got_probs, got_label = session.run(["probs", "label"], {"features": batch[:3]})
    np.testing.assert_allclose(got_probs, want_probs[:3], rtol=1e-5)
    np.testing.assert_array_equal(got_label, want_label[:3])


def test_runs_see_weights_written_elsewhere(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 2])
    layer = tf.layers.Dense(1, kernel_initializer=tf.ones_initializer())
    y = layer(x)
    batch = np.ones((1, 2), np.float32)
    with tf.Session() as sess:
        for k in range(6):  # more weight versions than a program bakes before it feeds them again
            layer.set_weights([np.full((2, 1), float(k), np.float32), np.zeros(1, np.float32)])
            assert sess.run(y, {x: batch})[0, 0] == 2.0 * k
            assert sess.run(y, {x: batch})[0, 0] == 2.0 * k


def test_initializers_set_variables_back(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 2])
    y = tf.layers.dense(x, 1, kernel_initializer=tf.ones_initializer(), bias_initializer=tf.constant_initializer(0.5))
    v = tf.Variable(3.0)
    kernel = tf.trainable_variables()[0]
    batch = np.ones((1, 2), np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([v.assign(10.0), kernel.assign(kernel * 5.0)])
        assert sess.run([v, y], {x: batch})[1][0, 0] == 10.5
        sess.run(tf.global_variables_initializer())
        got_v, got_y = sess.run([v, y], {x: batch})
        assert got_v == 3.0 and got_y[0, 0] == 2.5
        sess.run(v.assign(7.0))
        sess.run(tf.variables_initializer([v]))
        assert sess.run(v) == 3.0


def test_programs_are_bounded_like_uploaded_models(tmp_path: Any) -> None:
    import base64

    import httpx
    from onnx import TensorProto, helper

    small = ServerProcess(tmp_path / "state", "--max-model-bytes", "2000").start()
    try:
        big = helper.make_tensor("w", TensorProto.FLOAT, [1000], np.ones(1000, np.float32).tobytes(), raw=True)
        node = helper.make_node("Add", ["x", "w"], ["y"])
        graph = helper.make_graph([node], "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1000])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1000])], [big])
        body = {"model": base64.b64encode(helper.make_model(graph).SerializeToString()).decode()}
        answer = httpx.post(f"{small.url}/v1/graphs/g/programs", json=body)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "program_too_large"
    finally:
        small.stop()


def test_a_run_pinned_to_a_checkpoint_uses_its_values_not_the_baked_live_ones(graph: layerserve.Connection) -> None:
    x = tf.placeholder(tf.float32, [None, 2], name="x")
    layer = tf.layers.Dense(1, kernel_initializer=tf.ones_initializer(), name="fc")
    y = layer(x)
    batch = np.ones((1, 2), np.float32)
    with tf.Session() as sess:
        assert sess.run(y, {x: batch})[0, 0] == 2.0
        graph.create_checkpoint("ones")
        layer.set_weights([np.full((2, 1), 3.0, np.float32), np.zeros(1, np.float32)])
        assert sess.run(y, {x: batch})[0, 0] == 6.0  # live weights, baked into the program's session
        (program,) = tf.get_default_graph().binding.programs.values()
    pinned = graph.call("POST", f"/v1/graphs/{graph.graph}/programs/{program}:run",
                        {"feeds": ["x:0"], "fetches": ["fc/BiasAdd:0"], "checkpoint": "ones"}, tensors=[batch],
                        accept_tensors=True, request_key="values")
    assert pinned.tensors[0][0, 0] == 2.0
