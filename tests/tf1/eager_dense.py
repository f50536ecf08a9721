"""A TF1-style program using TensorFlow's own objects: tf.nn.relu, tf.constant_initializer with
arrays, tf.keras.regularizers. With layerserve, only the ``layers`` import changes."""

import json
import sys

import numpy as np
import tensorflow as tf
from tensorflow.compat.v1 import layers

kernel = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0 - 0.5
x = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], np.float32)

dense = layers.Dense(4, activation=tf.nn.relu, kernel_initializer=tf.constant_initializer(kernel),
                     bias_initializer=tf.constant_initializer([0.1, 0.2, 0.3, 0.4]),
                     kernel_regularizer=tf.keras.regularizers.l2(0.01))
y = dense(x)
head = layers.Dense(2, activation=tf.tanh, kernel_initializer=tf.compat.v1.constant_initializer(0.5),
                    bias_initializer=tf.zeros_initializer())
z = head(y)
json.dump({"y": np.asarray(y).tolist(), "z": np.asarray(z).tolist(),
           "losses": [float(loss) for loss in dense.losses]}, sys.stdout)
