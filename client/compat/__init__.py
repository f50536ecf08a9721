"""TensorFlow's ``tf.compat`` namespace: ``layerserve.compat.v1`` is the TF1 graph-mode drop-in."""
