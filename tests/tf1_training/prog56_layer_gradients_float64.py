"""float64 gradients of every layer family with respect to its input and its trainable variables (training).

Exercises: tf.gradients of sum(layer(x) * weights) through tf.layers.dense (several activations),
conv1d (causal, dilated), conv2d (same, strided), conv3d, conv2d_transpose (same, strided),
separable_conv2d (depth multiplier), max_pooling2d (same), average_pooling2d (strided),
batch_normalization in training mode (through the batch statistics) and in inference mode, flatten and
dropout with training=False, in float64 (the gathered convolutions and pooling); one list of gradients per layer, every variable included.
"""
import numpy as np

KIND = "training"
DTYPE = "float64"

CASES = [
    ("dense_tanh", "dense", (5, 4), dict(units=3, activation="tanh")),
    ("dense_softmax", "dense", (5, 4), dict(units=3, activation="softmax")),
    ("dense_elu", "dense", (2, 3, 4), dict(units=2, activation="elu")),
    ("conv1d", "conv1d", (2, 9, 2), dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2)),
    ("conv2d", "conv2d", (2, 7, 6, 2), dict(filters=3, kernel_size=(3, 2), strides=2, padding="same",
                                            activation="relu")),
    ("conv3d", "conv3d", (1, 4, 3, 4, 2), dict(filters=2, kernel_size=2, strides=(1, 2, 1), padding="same")),
    ("conv2d_transpose", "conv2d_transpose", (2, 3, 4, 2), dict(filters=3, kernel_size=3, strides=2,
                                                                 padding="same")),
    ("separable_conv2d", "separable_conv2d", (2, 5, 6, 3), dict(filters=2, kernel_size=3, depth_multiplier=2,
                                                                 padding="same")),
    ("max_pooling2d", "max_pooling2d", (2, 7, 6, 2), dict(pool_size=3, strides=2, padding="same")),
    ("average_pooling2d", "average_pooling2d", (2, 7, 6, 2), dict(pool_size=(2, 3), strides=(2, 1))),
    ("bn_training", "batch_normalization", (6, 3, 3, 2), dict(training=True)),
    ("bn_inference", "batch_normalization", (6, 3, 3, 2), dict(training=False)),
    ("bn_rank2", "batch_normalization", (8, 3), dict(training=True, epsilon=0.01)),
    ("flatten", "flatten", (2, 3, 2, 2), {}),
    ("dropout", "dropout", (3, 4), dict(rate=0.5, training=False)),
]


def make_data():
    rng = np.random.default_rng(56)
    data = {}
    for key, _, shape, _ in CASES:
        # distinct values so max pooling has no ties
        data[key + "_x"] = (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 1).astype(DTYPE)
    return data


def _weights(shape, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def _kernels(fn, shape, kwargs):
    """The kernel shapes of a layer case, by initializer argument (numpy values for every backend)."""
    channels, rank = shape[-1], len(shape) - 2

    def size(name):
        value = kwargs.get(name, 1)
        return [value] * rank if isinstance(value, int) else list(value)

    filters = kwargs.get("filters", kwargs.get("units"))
    if fn == "dense":
        return {"kernel_initializer": (channels, filters)}
    if fn == "conv2d_transpose":
        return {"kernel_initializer": (*size("kernel_size"), filters, channels)}
    if fn == "separable_conv2d":
        dm = kwargs["depth_multiplier"]
        return {"depthwise_initializer": (*size("kernel_size"), channels, dm),
                "pointwise_initializer": (1, 1, channels * dm, filters)}
    return {"kernel_initializer": (*size("kernel_size"), channels, filters)}


def program(tf, data):
    tf.reset_default_graph()
    out = {}
    dtype = getattr(tf, DTYPE)
    fetches = {}
    for k, (key, fn, shape, kwargs) in enumerate(CASES):
        x = tf.placeholder(dtype, [None, *shape[1:]], name=key + "_x")
        kwargs = dict(kwargs)
        if fn in ("dense", "conv1d", "conv2d", "conv3d", "conv2d_transpose", "separable_conv2d"):
            for j, (arg, kshape) in enumerate(_kernels(fn, shape, kwargs).items()):
                kwargs[arg] = tf.constant_initializer(_weights(kshape, 10 * k + j).astype(DTYPE) * 0.5)
            kwargs["bias_initializer"] = tf.constant_initializer(0.1)
        if fn == "batch_normalization":
            kwargs.update(gamma_initializer=tf.constant_initializer(1.5), beta_initializer=tf.constant_initializer(0.2),
                          moving_mean_initializer=tf.constant_initializer(0.3),
                          moving_variance_initializer=tf.constant_initializer(2.0))
        with tf.variable_scope(key):
            y = getattr(tf.layers, fn)(x, **kwargs)
        weights = tf.constant(_weights(y.shape.as_list()[1:], 100 + k).astype(DTYPE))
        loss = tf.reduce_sum(y * weights)
        trainable = tf.trainable_variables(key + "/")
        grads = tf.gradients(loss, [x, *trainable])
        fetches[key] = (x, grads)
        out[key + "_vars"] = [v.name for v in trainable]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for key, (x, grads) in fetches.items():
            for name, value in zip(["x", *out[key + "_vars"]], sess.run(grads, {x: data[key + "_x"]})):
                out[f"grad:{key}:{name}"] = value
    return out
