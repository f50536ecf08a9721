"""TensorFlow's and Keras' own objects, read through their names and ``get_config()``.

TF1 code passes ``activation=tf.nn.relu``, ``kernel_initializer=tf.constant_initializer(a)``,
``kernel_regularizer=tf.keras.regularizers.l2(0.01)`` and ``reuse=tf.compat.v1.AUTO_REUSE``.
None of these is imported here: a callable is recognised by its ``__name__``, an initializer
or regularizer object by its class name and ``get_config()``, AUTO_REUSE by its enum name.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACTIVATION_NAMES", "activation_name", "config_object", "is_auto_reuse", "is_config_object"]

# The activations the server computes, by the names Keras and tf.nn give their functions.
ACTIVATION_NAMES = frozenset({
    "linear", "relu", "relu6", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "elu", "selu",
    "softplus", "softsign", "swish", "silu", "gelu", "exponential", "mish", "leaky_relu",
})
# tf.nn's function names that differ from the Keras activation they compute.
_TF_FUNCTION_NAMES = {"softmax_v2": "softmax", "log_softmax_v2": "log_softmax", "exp": "exponential",
                      "identity": "linear"}


def activation_name(value: Any, what: str) -> str:
    """The activation name of a TF/Keras activation function (``tf.nn.relu`` -> ``"relu"``)."""
    name = getattr(value, "__name__", None)
    name = _TF_FUNCTION_NAMES.get(name, name) if isinstance(name, str) else None
    if name in ACTIVATION_NAMES:
        return str(name)
    accepted = ", ".join(sorted(ACTIVATION_NAMES))
    raise TypeError(
        f"{what}: {value!r} is a Python function, which layerserve cannot run on its server. Accepted: an "
        f"activation name ({accepted}), or a TensorFlow/Keras function of one of those names (tf.nn.relu, "
        "tf.tanh, tf.keras.activations.gelu, ...). For other computations write a custom layer "
        "(a layerserve.layers.Layer subclass with layerserve.ops).")


def is_config_object(value: Any) -> bool:
    """An initializer or regularizer object of TF, Keras or a look-alike: ``get_config()`` on an instance."""
    return not isinstance(value, type) and callable(getattr(value, "get_config", None))


def config_object(value: Any) -> dict[str, Any]:
    """``{"class_name", "config"}`` of an initializer or regularizer object, as the server reads it."""
    class_name = type(value).__name__
    config = dict(value.get_config())
    if class_name == "RandomUniform" and config.get("maxval", 0.0) is None:
        config["maxval"] = 1.0  # TF1's random_uniform_initializer: maxval None means 1 for floats
    if hasattr(config.get("value"), "tolist"):
        config["value"] = config["value"].tolist()  # an array in a constant initializer
    return {"class_name": class_name, "config": config}


def is_auto_reuse(value: Any) -> bool:
    """``tf.compat.v1.AUTO_REUSE`` (an enum member named AUTO_REUSE), or the string ``"auto"``."""
    return value == "auto" or getattr(value, "name", None) == "AUTO_REUSE"
