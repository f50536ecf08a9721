"""Programs: a TF1 graph-mode run as one ONNX model (pure composition; no I/O, no ONNX Runtime)."""

from layerserve.server.core.program.compose import Composed, ExtraFeed, Infer, LayerSource, compose
from layerserve.server.core.program.cost import check_inference_cost, program_budget
from layerserve.server.core.program.validate import CUSTOM_OPS, DOMAIN, check_gradient_paths, check_program

__all__ = ["CUSTOM_OPS", "DOMAIN", "Composed", "ExtraFeed", "Infer", "LayerSource", "check_gradient_paths",
           "check_inference_cost", "check_program", "compose", "program_budget"]
