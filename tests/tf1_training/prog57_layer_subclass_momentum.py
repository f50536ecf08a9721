"""A tf.layers.Layer subclass (add_weight in build, ops in call) trained with plain momentum (training).

Exercises: a Layer subclass with a trainable and a non-trainable weight, used twice (shared weights);
its call built from matmul, tanh, sigmoid, maximum, reduce_mean, expand_dims, concat and slicing;
tf.gradients through it; MomentumOptimizer (no Nesterov) with var_list=layer.trainable_weights;
tf.losses.huber_loss; loss of every step; final variables (the non-trainable one unchanged).
"""
import numpy as np

KIND = "training"
STEPS = 5


def make_data():
    rng = np.random.default_rng(57)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(6, 4), "y": f(6, 3), "w": f(4, 3) * 0.5, "g": np.abs(f(3)) + 0.5}


def program(tf, data):
    tf.reset_default_graph()
    out = {}

    class Gated(tf.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", shape=[int(input_shape[-1]), 3],
                                     initializer=tf.constant_initializer(data["w"]))
            self.g = self.add_weight("g", shape=[3], initializer=tf.constant_initializer(data["g"]), trainable=False)
            super().build(input_shape)

        def call(self, inputs):
            h = tf.matmul(inputs, self.w)
            gate = tf.sigmoid(h[:, :1])
            mixed = tf.concat([tf.tanh(h[:, 1:]) * gate, tf.maximum(h[:, :1], 0.0)], axis=1)
            return mixed * self.g - tf.expand_dims(tf.reduce_mean(mixed, axis=1), 1) * 0.1

    x = tf.placeholder(tf.float32, [None, 4])
    y = tf.placeholder(tf.float32, [None, 3])
    layer = Gated(name="gated")
    pred = layer(x) + 0.5 * layer(x * 0.5)
    loss = tf.losses.huber_loss(y, pred, delta=0.7)
    grad_x = tf.gradients(loss, x)[0]
    gs = tf.train.get_or_create_global_step()
    opt = tf.train.MomentumOptimizer(0.2, 0.8)
    train_op = opt.minimize(loss, global_step=gs, var_list=layer.trainable_weights)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], y: data["y"]}
        out["grad_x"] = sess.run(grad_x, feed)
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
