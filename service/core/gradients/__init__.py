"""Reverse-mode automatic differentiation of ONNX graphs, in standard ONNX ops.

``append_gradients`` appends the backward nodes of a forward graph to it, so one ONNX Runtime
run computes the forward values and the gradients (CPU and CUDA providers alike; no training
build of ONNX Runtime). All graph input shapes must be concrete: rules rely on static shapes.
The rule modules register themselves on import.
"""

from __future__ import annotations

from layerserve.server.core.gradients import (  # noqa: F401  (each module registers its rules)
    convolution,
    elementwise,
    linalg,
    normalization,
    pooling,
    reductions,
    shaping,
)
from layerserve.server.core.gradients.backprop import append_gradients
from layerserve.server.core.gradients.errors import GradientError, UnsupportedGradient
from layerserve.server.core.gradients.expand import GRADIENTS_DOMAIN, check_gradient_nodes, expand_gradient_nodes
from layerserve.server.core.gradients.registry import NON_DIFFERENTIABLE, RULES

__all__ = ["GRADIENTS_DOMAIN", "NON_DIFFERENTIABLE", "RULES", "GradientError", "UnsupportedGradient",
           "append_gradients", "check_gradient_nodes", "expand_gradient_nodes"]
