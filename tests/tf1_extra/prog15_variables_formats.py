"""tf.Variable, tf.math names, constants, float64 layers, and rank-3 inputs (inference).

Exercises: tf.Variable with Python and numpy initial values, names in name scopes and repeated names,
trainable=False; fetching constants and a fed placeholder; tf.math ops; a float64 dense; dense on a rank-3
input; batch_normalization(axis=1) on a rank-3 input in training and inference mode; a variable's dtype and shape.
"""
import numpy as np

KIND = "inference"


def make_data():
    rng = np.random.default_rng(155)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {"x": f(3, 4), "seq": f(2, 5, 4), "img": f(2, 5, 5, 2) + 0.3, "k": f(3, 3, 2, 3) * 0.3}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    c = tf.constant_initializer
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    seq = tf.placeholder(tf.float32, [None, 5, 4], name="seq")
    img = tf.placeholder(tf.float32, [None, 5, 5, 2], name="img")
    training = tf.placeholder(tf.bool, [], name="training")
    counter = tf.Variable(0.5, name="counter")
    with tf.name_scope("stats"):
        acc = tf.Variable(np.zeros(4, np.float32), trainable=False)
        acc2 = tf.Variable([1, 2, 3], name="ints")
    again = tf.Variable(1.0, name="counter")
    out["var_names"] = [v.name for v in (counter, acc, acc2, again)]
    out["var_dtypes"] = [v.dtype.name for v in (counter, acc, acc2, again)]
    out["acc_shape"] = acc.shape.as_list()
    accumulate = acc.assign_add(tf.math.reduce_sum(x, axis=0))
    const = tf.constant([[1, 2], [3, 4]], name="table")
    x64 = tf.cast(x, tf.float64)
    d64 = tf.layers.dense(x64, 2, kernel_initializer=c(0.25), name="double")
    d3 = tf.layers.dense(seq, 3, activation=tf.nn.relu, kernel_initializer=c(0.1), name="per_step")
    conv = tf.layers.conv2d(img, 3, 3, padding="same", kernel_initializer=c(data["k"]), name="conv")
    bn = tf.layers.batch_normalization(d3, axis=1, training=training, name="bn_axis1")
    flat = tf.concat([tf.layers.flatten(conv), tf.layers.flatten(bn)], axis=1)
    out["shapes"] = [str(t.shape) for t in (d64, d3, conv, bn, flat)]
    out["names"] = [t.name for t in (d64, d3, conv, flat)]
    out["variables"] = [v.name for v in tf.global_variables()]
    math_ops = tf.stack([tf.math.exp(x[0]), tf.math.log(tf.math.abs(x[1]) + 1.0), tf.math.sqrt(tf.math.square(x[2]))])
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        feed = {x: data["x"], seq: data["seq"], img: data["img"], training: False}
        out["const"], out["fed_x"] = sess.run([const, x], feed)
        out["acc1"] = sess.run(accumulate, feed)
        out["acc2"] = sess.run(accumulate, feed)
        out["counter"], out["ints"] = sess.run([counter, acc2])
        out["d64"], out["d3"], out["math"] = sess.run([d64, d3, math_ops], feed)
        out["flat_infer"] = sess.run(flat, feed)
        out["flat_train"], _ = sess.run([flat, updates], {**feed, training: True})
        out["moving"] = sess.run(next(v for v in tf.global_variables() if "moving_mean" in v.name))
    return out
