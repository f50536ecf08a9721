"""More array and math ops, integer and bool results, and fetch structures (inference).

Exercises: gather, where (1 and 3 arguments), tile, squeeze, expand_dims, stack, reduce_prod/min,
argmin, // and % on ints and floats, comparisons and logical ops, pow, sqrt, exp, log, maximum,
minimum, one_hot with on/off values, cast, shape, size, zeros/ones(_like), slicing with ..., newaxis
and negative steps, matmul transpose_b, add_n, int / int, fetching by name, namedtuple and
OrderedDict fetches, feeding a computed tensor, placeholder_with_default.
"""
import collections

import numpy as np

KIND = "inference"


def make_data():
    rng = np.random.default_rng(122)
    return {"x": rng.standard_normal((4, 5)).astype(np.float32),
            "idx": np.array([3, 0, 2], np.int32), "ints": np.array([[7, -3, 4], [-8, 5, 9]], np.int32)}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    x = tf.placeholder(tf.float32, [None, 5], name="x")
    idx = tf.placeholder(tf.int32, [None], name="idx")
    ints = tf.placeholder(tf.int32, [None, 3], name="ints")
    scale = tf.placeholder_with_default(tf.constant(2.0), [], name="scale")
    pos = tf.abs(x) + 0.5
    ops = {
        "gather": tf.gather(x, idx),
        "gather_axis1": tf.gather(x, idx, axis=1),
        "where3": tf.where(x > 0, x, -x * scale),
        "where1": tf.where(x > 0.5),
        "tile": tf.tile(x[:1], [2, 1]),
        "squeeze": tf.squeeze(tf.expand_dims(x, 1), axis=1),
        "stack": tf.stack([x[:, 0], x[:, 1]], axis=1),
        "prod_min": tf.stack([tf.reduce_prod(pos, axis=1), tf.reduce_min(x, axis=1)]),
        "argmin": tf.argmin(x, axis=1),
        "floordiv_int": ints // 3,
        "mod_int": ints % 3,
        "floordiv_float": x // 0.7,
        "truediv_int": ints / 2,
        "cmp": tf.logical_and(x > -0.5, tf.logical_not(x >= 0.5)),
        "any_eq": tf.logical_or(tf.equal(ints, 4), tf.not_equal(ints, 5)),
        "math": tf.concat([tf.pow(pos, 1.5), tf.sqrt(pos), tf.exp(-pos), tf.log(pos)], axis=1),
        "minmax": tf.maximum(tf.minimum(x, 0.3), -0.3),
        "one_hot": tf.one_hot(idx, 4, on_value=5, off_value=-1, dtype=tf.int32),
        "cast": tf.cast(x * 3.0, tf.int32),
        "shape": tf.shape(x),
        "size": tf.size(x),
        "fill": tf.concat([tf.zeros([2, 2]), tf.ones([2, 2])], axis=0),
        "like": tf.zeros_like(ints) + tf.ones_like(ints) * 2,
        "slices": tf.concat([x[..., -1:], x[:, ::-2], x[:, tf.newaxis, 2]], axis=1),
        "matmul_tb": tf.matmul(x, x, transpose_b=True),
        "add_n": tf.add_n([x, x * 2.0, x * 3.0]),
        "scalar_bool": tf.reduce_all(x > -10.0),
        "scalar_int": tf.reduce_sum(ints),
    }
    total = tf.reduce_sum(x, name="total")
    pair = collections.namedtuple("Pair", ["first", "second"])
    doubled = x * 2.0
    quad = doubled * 2.0
    with tf.Session() as sess:
        feed = {x: data["x"], idx: data["idx"], ints: data["ints"]}
        for k, v in sess.run(ops, feed).items():
            out[k] = v
        got = sess.run(pair(first=total, second=[tf.no_op(), "total:0"]), feed)
        out["nt_type"] = type(got).__name__
        out["nt_first"] = got.first
        out["nt_second"] = got.second[1]
        out["nt_none"] = got.second[0]
        od = sess.run(collections.OrderedDict([("b", total), ("a", ops["argmin"])]), feed)
        out["od_keys"] = list(od.keys())
        out["fed_quad"] = sess.run(quad, {doubled: np.ones((2, 5), np.float32)})
        out["scale_fed"] = sess.run(ops["where3"], {**feed, scale: 10.0})
        out["scalar_type"] = type(sess.run(ops["scalar_int"], feed)).__name__
    return out
