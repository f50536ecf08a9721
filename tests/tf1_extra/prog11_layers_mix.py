"""Other layer families in scopes, a layer object called twice, BN non-fused in training (inference).

Exercises: conv1d / pooling1d, conv2d_transpose, separable_conv2d, conv3d with pooling3d, a Dense
object called on two inputs, batch_normalization on rank 2 with training=True (biased variance),
UPDATE_OPS through tf.group, dropout with rate 0 in training, layer names and scope names.
"""
import numpy as np

KIND = "inference"


def make_data():
    rng = np.random.default_rng(111)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"seq": f(2, 8, 3), "img": f(2, 5, 5, 2), "vol": f(1, 4, 4, 4, 1), "vec": f(5, 4)}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    seq = tf.placeholder(tf.float32, [None, 8, 3])
    img = tf.placeholder(tf.float32, [None, 5, 5, 2])
    vol = tf.placeholder(tf.float32, [None, 4, 4, 4, 1])
    vec = tf.placeholder(tf.float32, [None, 4])
    with tf.variable_scope("seq"):
        s = tf.layers.conv1d(seq, 4, 3, padding="same", activation=tf.nn.tanh, kernel_initializer=c(0.1))
        s1 = tf.layers.max_pooling1d(s, 2, 2)
        s2 = tf.layers.average_pooling1d(s, 3, 1, padding="same")
    with tf.variable_scope("img"):
        t = tf.layers.conv2d_transpose(img, 3, 3, strides=2, padding="same", kernel_initializer=c(0.05))
        u = tf.layers.separable_conv2d(img, 4, 3, depth_multiplier=2,
                                       depthwise_initializer=c(0.2), pointwise_initializer=c(-0.1),
                                       bias_initializer=c(0.3))
    with tf.variable_scope("vol"):
        v = tf.layers.conv3d(vol, 2, 2, kernel_initializer=c(0.3), activation=tf.nn.relu)
        v = tf.layers.max_pooling3d(v, 2, 1)
        v = tf.layers.average_pooling3d(v, 2, 1)
    shared = tf.layers.Dense(3, activation=tf.nn.sigmoid, kernel_initializer=c(0.25), name="shared")
    a = shared(vec)
    b = shared(vec * 2.0)
    bn = tf.layers.batch_normalization(vec, training=True, momentum=0.9)
    dropped = tf.layers.dropout(bn, rate=0.0, training=True)
    out["names"] = [t.name for t in (s, s1, s2, t, u, v, a, b)]
    out["shapes"] = [str(t.shape) for t in (s1, s2, t, u, v)]
    out["layer_name"] = shared.name
    out["scope_name"] = shared.scope_name
    out["variables"] = [x.name for x in tf.global_variables()]
    out["trainable"] = [x.name for x in tf.trainable_variables()]
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    out["n_updates"] = len(updates)
    step = tf.group(*updates)
    moving = [x for x in tf.global_variables() if "moving" in x.name]
    feed = {seq: data["seq"], img: data["img"], vol: data["vol"], vec: data["vec"]}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for k, val in enumerate(sess.run([s1, s2, t, u, v, a, b, dropped], feed)):
            out[f"out{k}"] = val
        out["step"] = sess.run(step, feed)
        out["moving_mean"], out["moving_var"] = sess.run(moving)
    return out
