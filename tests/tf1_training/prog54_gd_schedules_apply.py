"""Gradient descent through compute_gradients / apply_gradients with every TF1 schedule (training).

Exercises: compute_gradients giving (None, var) for a variable the loss does not use (no slot,
skipped); apply_gradients of scaled gradients; tf.train.exponential_decay(staircase=True),
natural_exp_decay, inverse_time_decay, cosine_decay, polynomial_decay(cycle=True) fetched at every
step (the global_step before the increment); tf.global_norm; loss of every step; final variables.
"""
import numpy as np

KIND = "training"
STEPS = 6


def make_data():
    rng = np.random.default_rng(54)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(9, 4), "y": rng.integers(0, 3, 9).astype(np.int64), "k": f(4, 3) * 0.3}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    x = tf.placeholder(tf.float32, [None, 4])
    y = tf.placeholder(tf.int64, [None])
    logits = tf.layers.dense(x, 3, kernel_initializer=tf.constant_initializer(data["k"]))
    unused = tf.get_variable("unused", [2], initializer=tf.ones_initializer())
    loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
    gs = tf.train.get_or_create_global_step()
    rates = {
        "exp": tf.train.exponential_decay(0.4, gs, 2, 0.5, staircase=True),
        "nat": tf.train.natural_exp_decay(0.4, gs, 3, 0.3),
        "inv": tf.train.inverse_time_decay(0.4, gs, 2, 0.7, staircase=True),
        "cos": tf.train.cosine_decay(0.4, gs, 4, alpha=0.1),
        "poly": tf.train.polynomial_decay(0.4, gs, 2, end_learning_rate=0.1, cycle=True),
    }
    # every schedule feeds the update, so each is read before the step's increment
    lr = rates["exp"] + 0.0 * (rates["nat"] + rates["inv"] + rates["cos"] + rates["poly"])
    opt = tf.train.GradientDescentOptimizer(lr)
    gvs = opt.compute_gradients(loss)
    out["connected"] = [g is not None for g, _ in gvs]
    out["var_order"] = [v.name for _, v in gvs]
    norm = tf.global_norm([g for g, _ in gvs])
    train_op = opt.apply_gradients([(g * 0.5, v) for g, v in gvs if g is not None], global_step=gs)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], y: data["y"]}
        losses, norms, seen = [], [], {k: [] for k in rates}
        for _ in range(STEPS):
            _, value, n, r = sess.run([train_op, loss, norm, rates], feed)
            losses.append(value)
            norms.append(n)
            for k in rates:
                seen[k].append(r[k])
        out["loss"], out["norm"] = np.array(losses), np.array(norms)
        for k, v in seen.items():
            out["lr_" + k] = np.array(v)
        out["global_step"] = sess.run(gs)
        vs = tf.global_variables()
        out["global_variables"] = [v.name for v in vs]
        for v, val in zip(vs, sess.run(vs)):
            out["var:" + v.name] = val
        del unused
    return out
