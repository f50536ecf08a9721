"""What a program may cost before the server accepts it: the model budget of uploaded models
(nodes, edges and nesting once functions are inlined, counted in time linear in its size), and
the CPU time of ONNX shape inference on it, measured where it cannot stall the server.

Shape inference holds the GIL, and the server repeats it on a program in its own process
(checking its gradients at registration, forming them at a run, exporting it), so a program whose
inference is costly would freeze the event loop. ``check_inference_cost`` runs in the validation
child (``runtime.vetting``), which is stopped past the CPU limit or the validation deadline.
"""

from __future__ import annotations

import contextlib
import time

import onnx

from layerserve.server.errors import InvalidArgument, LayerServeError
from layerserve.server.layers.custom.budget import ModelBudget

__all__ = ["check_inference_cost", "program_budget"]


def _too_large(message: str) -> LayerServeError:
    return InvalidArgument(f"the program {message}", code="program_too_large")


def program_budget(*, max_nodes: int, max_edges: int, max_depth: int) -> ModelBudget:
    """The budget a registered program is measured against (``--max-program-nodes`` and
    ``--max-program-edges``, the nesting of ``--max-model-depth``)."""
    return ModelBudget(max_nodes, max_depth, max_edges=max_edges, nodes_flag="--max-program-nodes",
                       edges_flag="--max-program-edges", refuse=_too_large)


def check_inference_cost(data: bytes, max_inference_s: float) -> None:
    """422 when ONNX shape inference on the program takes more than ``max_inference_s`` of CPU.

    A program's own nodes are inferred as composing would (its ``ai.layerserve`` nodes are
    unknown to ONNX and yield unknown shapes); an error is no refusal here: a program that does
    not fit its feeds is told so when it runs."""
    model = onnx.load_from_string(data)
    started = time.process_time()  # CPU time: what the work costs, however loaded the machine is
    with contextlib.suppress(onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        onnx.shape_inference.infer_shapes(model, data_prop=True)
    seconds = time.process_time() - started
    if seconds > max_inference_s:
        raise InvalidArgument(f"the program takes {seconds:.2f} s of CPU in ONNX shape inference, more than the "
                              f"limit of {max_inference_s:g} s (--max-model-inference-s): the server repeats it for "
                              "every feed signature", code="program_too_large", limit_s=max_inference_s)
