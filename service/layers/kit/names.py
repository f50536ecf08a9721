"""The default name of a layer class (``Conv2DTranspose`` -> ``conv2d_transpose``)."""

from __future__ import annotations

import re

__all__ = ["to_snake_case"]


def to_snake_case(class_name: str) -> str:
    """Keras' conversion: ``Conv2DTranspose`` -> ``conv2d_transpose``."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    if insecure[0] != "_":
        return insecure
    return "private" + insecure
