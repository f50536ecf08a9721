"""Loss reductions and weights, regularization collections, scope counters and AUTO_REUSE (inference).

Exercises: tf.losses with scalar and tensor weights, Reduction.MEAN / SUM / NONE (loss_collection=None),
absolute_difference, label smoothing, get_losses, get_regularization_loss(es), get_total_loss without
regularization, get_variable with trainable=False and regularizers, AUTO_REUSE, default_name scopes,
re-entered scopes' op names, name_scope op names.
"""
import numpy as np

KIND = "inference"


def make_data():
    rng = np.random.default_rng(133)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"pred": f(6, 3), "target": f(6, 3), "w": np.abs(f(6, 1)), "labels": np.array([0, 1, 2, 1, 0, 2], np.int64)}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    pred = tf.placeholder(tf.float32, [None, 3])
    target = tf.placeholder(tf.float32, [None, 3])
    w = tf.placeholder(tf.float32, [None, 1])
    labels = tf.placeholder(tf.int64, [None])
    R = tf.losses.Reduction
    losses = {
        "mse_w": tf.losses.mean_squared_error(target, pred, weights=w),
        "mse_mean": tf.losses.mean_squared_error(target, pred, weights=2.0, reduction=R.MEAN),
        "abs_sum": tf.losses.absolute_difference(target, pred, reduction=R.SUM),
        "abs_none": tf.losses.absolute_difference(target, pred, reduction=R.NONE, loss_collection=None),
        "huber_d": tf.losses.huber_loss(target, pred, delta=0.5),
        "softmax_ls": tf.losses.softmax_cross_entropy(tf.one_hot(labels, 3), pred, label_smoothing=0.2),
        "sparse_w": tf.losses.sparse_softmax_cross_entropy(labels, pred, weights=tf.squeeze(w, 1)),
        "sigmoid_ls": tf.losses.sigmoid_cross_entropy(tf.cast(target > 0, tf.float32), pred, label_smoothing=0.1),
    }
    out["n_losses"] = len(tf.losses.get_losses())
    with tf.variable_scope("reg"):
        a = tf.get_variable("a", [3], initializer=tf.constant_initializer([1.0, -2.0, 3.0]),
                            regularizer=lambda t: 0.01 * tf.reduce_sum(tf.abs(t)))
        b = tf.get_variable("b", [2], initializer=tf.ones_initializer(), trainable=False,
                            regularizer=lambda t: 0.5 * tf.nn.l2_loss(t))
    with tf.variable_scope("shared", reuse=tf.AUTO_REUSE):
        s1 = tf.get_variable("s", [1], initializer=tf.zeros_initializer())
    with tf.variable_scope("shared", reuse=tf.AUTO_REUSE):
        s2 = tf.get_variable("s", [1])
    out["auto_reuse_same"] = s1 is s2
    scopes = []
    for _ in range(2):
        with tf.variable_scope(None, default_name="block") as sc:
            scopes.append(sc.name)
            scopes.append(tf.identity(a, name="out").name)
    with tf.variable_scope("reg", reuse=True):
        scopes.append(tf.add(tf.get_variable("a"), 1.0).name)
    with tf.name_scope("stats"):
        scopes.append(tf.reduce_mean(pred).name)
        with tf.name_scope("inner"):
            scopes.append((pred * 2.0).name)
    with tf.name_scope("stats"):
        scopes.append(tf.reduce_mean(pred).name)
    out["scopes"] = scopes
    out["variables"] = [v.name for v in tf.global_variables()]
    out["trainable"] = [v.name for v in tf.trainable_variables()]
    out["n_reg"] = len(tf.losses.get_regularization_losses())
    reg_total = tf.losses.get_regularization_loss()
    total = tf.losses.get_total_loss(add_regularization_losses=False)
    total_reg = tf.losses.get_total_loss()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {pred: data["pred"], target: data["target"], w: data["w"], labels: data["labels"]}
        for k, v in sess.run(losses, feed).items():
            out["loss_" + k] = v
        out["reg_total"], out["total"], out["total_reg"] = sess.run([reg_total, total, total_reg], feed)
        out["b"] = sess.run(b)
    return out
