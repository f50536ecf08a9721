"""float64 training with two Adam optimizers and plain RMSProp on separate variables (training).

Exercises: float64 placeholders, dense layers and get_variable; tf.train.AdamOptimizer with its own
betas and epsilon; a second AdamOptimizer (beta1_power_1, beta2_power_1) on another variable;
RMSPropOptimizer without momentum;
tf.train.polynomial_decay; tf.stop_gradient in the loss; tf.gradients with grad_ys; loss of every
step; final variables by name; global_step.
"""
import numpy as np

KIND = "training"
STEPS = 5


def make_data():
    rng = np.random.default_rng(53)
    f = lambda *s: rng.standard_normal(s)
    return {"x": f(7, 3), "y": f(7, 1), "k": f(3, 1) * 0.5, "s": f(1)}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    x = tf.placeholder(tf.float64, [None, 3])
    y = tf.placeholder(tf.float64, [None, 1])
    pred = tf.layers.dense(x, 1, kernel_initializer=c(data["k"]))
    scale = tf.get_variable("scale", [1], tf.float64, initializer=c(data["s"]))
    shift = tf.get_variable("shift", [1], tf.float64, initializer=tf.zeros_initializer())
    err = pred * scale + shift - y
    loss = tf.reduce_mean(tf.square(err)) + 0.1 * tf.reduce_sum(tf.stop_gradient(scale) * shift)
    g_scaled = tf.gradients(loss, [scale, shift], grad_ys=tf.constant(2.0, tf.float64))
    gs = tf.train.get_or_create_global_step()
    lr = tf.train.polynomial_decay(0.05, gs, 4, end_learning_rate=0.01, power=2.0)
    adam = tf.train.AdamOptimizer(lr, beta1=0.8, beta2=0.95, epsilon=1e-4)
    gvs = adam.compute_gradients(loss)  # dense kernel, bias, scale, shift
    with tf.control_dependencies([g for g, _ in gvs]):  # no update before every gradient is read
        # the step increments after the updates that read the decayed rate
        op1 = adam.apply_gradients(gvs[:2], global_step=gs)
        op2 = tf.train.AdamOptimizer(0.03).apply_gradients(gvs[2:3])
        op3 = tf.train.RMSPropOptimizer(0.01).apply_gradients(gvs[3:])
    train_op = tf.group(op1, op2, op3)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], y: data["y"]}
        out["grads_scaled"] = np.concatenate(sess.run(g_scaled, feed))
        losses = []
        for _ in range(STEPS):
            _, value = sess.run([train_op, loss], feed)
            losses.append(value)
        out["loss"] = np.array(losses)
        out["global_step"] = sess.run(gs)
        vs = tf.global_variables()
        out["global_variables"] = [v.name for v in vs]
        for v, val in zip(vs, sess.run(vs)):
            out["var:" + v.name] = val
    return out
