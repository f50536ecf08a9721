"""layerserve's server: TensorFlow's tf.compat.v1.layers over HTTP, executed by ONNX Runtime."""

__all__ = ["__version__"]

__version__ = "0.1.0"
