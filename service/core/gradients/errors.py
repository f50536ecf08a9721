"""Why a gradient cannot be formed: raised while the backward graph is built, before anything runs."""

from __future__ import annotations

from layerserve.server.errors import InvalidArgument

__all__ = ["GradientError", "UnsupportedGradient"]


class GradientError(InvalidArgument):
    """The forward graph does not allow a backward graph (a dynamic shape, a non-constant
    argument a rule needs); a 4xx at registration."""

    code = "gradient_not_formed"


class UnsupportedGradient(GradientError):
    """An op on the path from ``ys`` to ``xs`` has no gradient rule; TF raises LookupError."""

    code, exception = "no_gradient", "LookupError"

    def __init__(self, op_type: str, node_name: str = "", domain: str = "") -> None:
        shown = f"{domain}::{op_type}" if domain else op_type
        super().__init__(f"No gradient defined for operation '{node_name or op_type}' (op type: {shown})",
                         op_type=shown, node=node_name)
