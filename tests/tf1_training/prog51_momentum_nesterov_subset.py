"""An MLP regressor trained by Nesterov momentum on a subset of its variables (training).

Exercises: tf.train.MomentumOptimizer(use_nesterov=True) with a tf.train.piecewise_constant rate;
minimize(var_list=trainable_variables("hidden"), global_step=...); get_slot_names, get_slot(var).name;
slots only for the variables trained; tf.losses.mean_squared_error; rate and loss of every step;
final variables by name (the untrained layer unchanged); global_step.
"""
import numpy as np

KIND = "training"
STEPS = 6


def make_data():
    rng = np.random.default_rng(51)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(10, 4), "y": f(10, 2), "k1": f(4, 6) * 0.5, "b1": f(6) * 0.1, "k2": f(6, 2) * 0.5}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    x = tf.placeholder(tf.float32, [None, 4])
    y = tf.placeholder(tf.float32, [None, 2])
    h = tf.layers.dense(x, 6, tf.nn.tanh, kernel_initializer=c(data["k1"]), bias_initializer=c(data["b1"]),
                        name="hidden")
    pred = tf.layers.dense(h, 2, kernel_initializer=c(data["k2"]), name="out")
    loss = tf.losses.mean_squared_error(y, pred)
    gs = tf.train.get_or_create_global_step()
    lr = tf.train.piecewise_constant(gs, [2, 4], [0.1, 0.05, 0.02])
    opt = tf.train.MomentumOptimizer(lr, 0.9, use_nesterov=True)
    train_op = opt.minimize(loss, global_step=gs, var_list=tf.trainable_variables("hidden"))
    out["slot_names"] = opt.get_slot_names()
    kernel = tf.trainable_variables("hidden")[0]
    out["slot_of_kernel"] = opt.get_slot(kernel, "momentum").name
    out["slot_of_out_kernel_is_none"] = opt.get_slot(tf.trainable_variables("out")[0], "momentum") is None
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], y: data["y"]}
        losses, rates = [], []
        for _ in range(STEPS):
            _, value, r = sess.run([train_op, loss, lr], feed)
            losses.append(value)
            rates.append(r)
        out["loss"], out["lr"] = np.array(losses), np.array(rates)
        out["global_step"] = sess.run(gs)
        vs = tf.global_variables()
        out["global_variables"] = [v.name for v in vs]
        for v, val in zip(vs, sess.run(vs)):
            out["var:" + v.name] = val
    return out
