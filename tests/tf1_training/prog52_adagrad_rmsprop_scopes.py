"""Two towers trained by two optimizers in one step: Adagrad (built in a variable scope) and
centered RMSProp with momentum (training).

Exercises: tf.train.AdagradOptimizer(initial_accumulator_value=0.2) applied inside
variable_scope("opt"): slots under it; tf.train.RMSPropOptimizer(decay, momentum, centered=True): slots
rms, mg, momentum as RMSProp, RMSProp_1, RMSProp_2; one compute_gradients, each optimizer's
apply_gradients on its tower after every gradient; tf.group of both; tf.clip_by_norm fetched; tf.losses.sigmoid_cross_entropy; loss of every step;
final variables and slots by name; global_step.
"""
import numpy as np

KIND = "training"
STEPS = 5


def make_data():
    rng = np.random.default_rng(52)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(8, 3), "y": (rng.random((8, 2)) > 0.5).astype(np.float32),
            "ka": f(3, 4) * 0.5, "kb": f(4, 2) * 0.5, "bb": f(2) * 0.1}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.placeholder(tf.float32, [None, 2])
    with tf.variable_scope("a"):
        h = tf.layers.dense(x, 4, tf.nn.sigmoid, kernel_initializer=c(data["ka"]))
    with tf.variable_scope("b"):
        logits = tf.layers.dense(h, 2, kernel_initializer=c(data["kb"]), bias_initializer=c(data["bb"]))
    loss = tf.losses.sigmoid_cross_entropy(y, logits)
    gs = tf.train.get_or_create_global_step()
    adagrad = tf.train.AdagradOptimizer(0.3, initial_accumulator_value=0.2)
    rms = tf.train.RMSPropOptimizer(0.02, decay=0.8, momentum=0.5, centered=True)
    # every gradient before any update: a step reads the variables as they were when it started
    gvs = rms.compute_gradients(loss)
    with tf.control_dependencies([g for g, _ in gvs]):
        with tf.variable_scope("opt"):
            op_a = adagrad.apply_gradients(gvs[:2])
        op_b = rms.apply_gradients(gvs[2:], global_step=gs)
    train_op = tf.group(op_a, op_b)
    clipped = tf.clip_by_norm(gvs[2][0], 0.05)
    out["rms_slot_names"] = rms.get_slot_names()
    out["adagrad_slot_names"] = adagrad.get_slot_names()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], y: data["y"]}
        losses = []
        for step in range(STEPS):
            if step == 0:
                out["clipped_first"] = sess.run(clipped, feed)
            _, value = sess.run([train_op, loss], feed)
            losses.append(value)
        out["loss"] = np.array(losses)
        out["global_step"] = sess.run(gs)
        vs = tf.global_variables()
        out["global_variables"] = [v.name for v in vs]
        for v, val in zip(vs, sess.run(vs)):
            out["var:" + v.name] = val
    return out
