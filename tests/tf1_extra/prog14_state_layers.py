"""Variables under control dependencies, layer losses and updates, reuse forms (inference).

Exercises: a read under control_dependencies of an assign sees the new value; assign chains;
tf.assign / assign_add / assign_sub and Variable methods; a BatchNormalization object called twice in
training mode (four update ops, get_updates_for), fused=False on rank 4; dense with a kernel
regularizer and an activity regularizer (order of REGULARIZATION_LOSSES, activity loss / batch);
functional dense with reuse=tf.AUTO_REUSE; a Layer subclass with add_loss; layer.losses.
"""
import numpy as np

KIND = "inference"


def make_data():
    rng = np.random.default_rng(144)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(4, 3), "img": f(2, 3, 3, 2) + 1.0}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    img = tf.placeholder(tf.float32, [None, 3, 3, 2], name="img")
    counter = tf.get_variable("counter", initializer=tf.constant(1.0))
    step1 = tf.assign(counter, counter * 2.0)
    with tf.control_dependencies([step1]):
        after = tf.identity(counter, name="after")
        step2 = counter.assign_add(10.0)
    with tf.control_dependencies([step2]):
        final = counter.read_value()
    minus = tf.assign_sub(counter, 1.0)

    bn = tf.layers.BatchNormalization(momentum=0.5, fused=False)
    y1 = bn(img, training=True)
    y2 = bn(img * 2.0, training=True)
    out["n_updates"] = len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
    out["n_updates_for_img"] = len(bn.get_updates_for(img))

    h = tf.layers.dense(x, 2, kernel_initializer=c(0.5), kernel_regularizer=lambda w: tf.reduce_sum(w) * 0.1,
                        activity_regularizer=lambda a: tf.reduce_sum(tf.abs(a)), name="fc")
    h2 = tf.layers.dense(x * 2.0, 2, name="fc", reuse=tf.AUTO_REUSE)
    h3 = tf.layers.dense(x, 2, kernel_initializer=c(-0.5), name="fresh", reuse=tf.AUTO_REUSE)

    class Penalized(tf.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", [int(input_shape[-1])], initializer=tf.ones_initializer())
            super().build(input_shape)

        def call(self, inputs):
            self.add_loss(tf.reduce_sum(self.w) * 0.01)
            return inputs * self.w

    layer = Penalized(name="pen")
    p = layer(x)
    out["layer_losses"] = len(layer.losses)
    regs = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    out["n_regs"] = len(regs)
    out["variables"] = [v.name for v in tf.global_variables()]
    moving = [v for v in tf.global_variables() if "moving" in v.name]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out["after"] = sess.run(after)
        out["final"] = sess.run(final)
        out["counter"] = sess.run(counter)
        out["minus"] = sess.run(minus)
        feed = {x: data["x"], img: data["img"]}
        out["y1"], out["y2"] = sess.run([y1, y2], feed)
        sess.run(tf.get_collection(tf.GraphKeys.UPDATE_OPS)[:2], feed)  # one call's: TF runs two calls' in any order
        out["moving_mean"], out["moving_var"] = sess.run(moving)
        out["h"], out["h2"], out["h3"], out["p"] = sess.run([h, h2, h3, p], feed)
        out["regs"] = np.array(sess.run(regs, feed))
    return out
