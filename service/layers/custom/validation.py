"""Checks an uploaded custom-layer model before anything is created.

In order: size (413), decoding, external data (nothing in an upload may name a file on the
server), the node and depth budget (budget.py), onnx.checker, strict shape inference and the
sizes it computed, then the graph against the declared inputs,
variables, losses, updates and training input. Every failure is a 422 that names the field
or graph value at fault. Whether ONNX Runtime can run the model is checked by the runtime
(``runtime.vetting``, in the same child process as these checks, on the active providers).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator

import onnx
from google.protobuf.message import DecodeError

from layerserve.server.errors import PayloadTooLarge
from layerserve.server.layers.custom.budget import ModelBudget, check_inference_time, check_inferred_sizes
from layerserve.server.layers.custom.framing import depends_on, subgraphs
from layerserve.server.layers.custom.spec import LossDecl, UpdateDecl, VariableDecl, bad, input_ref_of

__all__ = ["check_graph", "decode_model", "dims", "elem_dtype", "safe_model"]

_FLOAT_TYPES: dict[int, str] = {onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.FLOAT: "float32",
                                onnx.TensorProto.DOUBLE: "float64"}


def decode_model(text: object, limit: int) -> bytes:
    if not isinstance(text, str) or not text:
        raise bad("config.model", "must be the ONNX model's bytes in base64")
    if len(text) * 3 // 4 > limit + 3:
        raise PayloadTooLarge(f"custom layer config.model: the ONNX model has about {len(text) * 3 // 4} bytes, "
                              f"more than the limit of {limit} bytes (--max-model-bytes)", limit=limit)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad("config.model", "is not valid base64") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"custom layer config.model: the ONNX model has {len(raw)} bytes, more than the "
                              f"limit of {limit} bytes (--max-model-bytes)", limit=limit)
    return raw


def _tensors(graph: onnx.GraphProto, where: str) -> Iterator[tuple[onnx.TensorProto, str]]:
    for t in graph.initializer:
        yield t, f"{where} initializer {t.name!r}"
    for s in graph.sparse_initializer:
        yield s.values, f"{where} sparse initializer {s.values.name!r}"
        yield s.indices, f"{where} sparse initializer {s.values.name!r} indices"
    for node in graph.node:
        yield from _node_tensors(node, f"{where} node {node.name or node.op_type!r}")


def _node_tensors(node: onnx.NodeProto, where: str) -> Iterator[tuple[onnx.TensorProto, str]]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t, f"{where} attribute {attr.name!r}"
        yield from ((t, f"{where} attribute {attr.name!r}") for t in attr.tensors)
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values, f"{where} attribute {attr.name!r}"
        yield from ((s.values, f"{where} attribute {attr.name!r}") for s in attr.sparse_tensors)
    for sub in subgraphs(node):
        yield from _tensors(sub, f"{where} subgraph {sub.name!r}")


def _check_no_external_data(model: onnx.ModelProto) -> None:
    tensors = list(_tensors(model.graph, "graph"))
    for fn in model.functions:
        for node in fn.node:
            tensors.extend(_node_tensors(node, f"function {fn.name!r} node {node.name or node.op_type!r}"))
    for tensor, where in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise bad("config.model", f"{where} refers to external data; uploaded models must carry all "
                                      "their tensors inline (no file paths)")


def safe_model(raw: bytes, budget: ModelBudget, max_elements: int) -> onnx.ModelProto:
    """The decoded, checked model with every shape inference could fill in: within ``budget``
    (checked before anything inlines its functions), and every shape inference computed
    within ``max_elements``."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise bad("config.model", f"is not an ONNX model (or is truncated): {exc}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise bad("config.model", "is not an ONNX model: it has no graph nodes (truncated or not ONNX?)")
    _check_no_external_data(model)
    if len(model.training_info):
        raise bad("config.model", "carries training_info, which layerserve does not run; remove it")
    budget.check(model)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        raise bad("config.model", f"fails onnx.checker: {str(exc).strip()[:600]}") from None
    started = time.process_time()  # CPU time: what the work costs, however loaded the machine is
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as exc:
        raise bad("config.model", f"fails ONNX shape inference: {str(exc).strip()[:600]}") from None
    check_inference_time(budget, time.process_time() - started)
    check_inferred_sizes(inferred, max_elements)
    return inferred


def elem_dtype(info: onnx.ValueInfoProto) -> str | None:
    """The numpy dtype name of a tensor value, or None when it is not a tensor."""
    if not info.type.HasField("tensor_type"):
        return None
    elem = info.type.tensor_type.elem_type
    return _FLOAT_TYPES.get(elem) or onnx.helper.tensor_dtype_to_np_dtype(elem).name


def dims(info: onnx.ValueInfoProto) -> list[int | None] | None:
    """Declared dims (None where symbolic), or None when the rank is unknown."""
    tensor = info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _check_data_inputs(inputs: list[onnx.ValueInfoProto]) -> None:
    first = elem_dtype(inputs[0])
    for i, vi in enumerate(inputs):
        dtype = elem_dtype(vi)
        if dtype not in _FLOAT_TYPES.values() or dtype != first:
            raise bad("config.model", f"graph input {i} {vi.name!r} is {dtype}: the layer's inputs must all be "
                                      f"tensors of one float dtype (input 0 is {first})")


def _check_variable(vi: onnx.ValueInfoProto, decl: VariableDecl, n_data: int, where: str) -> None:
    if elem_dtype(vi) != decl.dtype:
        raise bad(where, f"variable {decl.name!r} is {decl.dtype} but graph input {vi.name!r} is {elem_dtype(vi)}")
    declared = dims(vi)
    if declared is not None and len(declared) != len(decl.shape):
        raise bad(where, f"variable {decl.name!r} has rank {len(decl.shape)} but graph input {vi.name!r} has "
                         f"rank {len(declared)} ({declared})")
    for axis, entry in enumerate(decl.shape):
        ref = input_ref_of(entry)
        if ref is not None and ref[0] >= n_data:
            raise bad(where, f"shape entry {entry!r} names input {ref[0]} but the graph has {n_data} input(s)")
        if ref is None and declared is not None and declared[axis] not in (None, entry):
            raise bad(where, f"variable {decl.name!r} dim {axis} is {entry} but graph input {vi.name!r} "
                             f"declares {declared[axis]}")


def _split_inputs(model: onnx.ModelProto, variables: list[VariableDecl],
                  training: str | None) -> list[onnx.ValueInfoProto]:
    """The data inputs; the rest must be the variables in order, then the training input."""
    constants = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in constants]
    names = [vi.name for vi in inputs]
    n_data = len(inputs) - len(variables) - (training is not None)
    if n_data < 1:
        raise bad("config.variables", f"the graph has {len(inputs)} input(s) {names} but the layer declares "
                                      f"{len(variables)} variable(s){' and a training input' if training else ''}:"
                                      " graph inputs are the layer's inputs, then its variables, then training")
    for i, decl in enumerate(variables):
        vi = inputs[n_data + i]
        if vi.name != decl.name:
            raise bad(f"config.variables[{i}]", f"graph input {n_data + i} is {vi.name!r}, expected variable "
                                                f"{decl.name!r} (graph inputs: {names}; the layer's inputs come "
                                                "first, then the variables in declaration order)")
        _check_variable(vi, decl, n_data, f"config.variables[{i}]")
    if training is not None:
        vi = inputs[-1]
        if vi.name != training or elem_dtype(vi) != "bool" or dims(vi) not in ([], None):
            raise bad("config.training_input", f"the last graph input must be the bool scalar {training!r}; "
                                               f"found {vi.name!r} ({elem_dtype(vi)}, shape {dims(vi)})")
    _check_data_inputs(inputs[:n_data])
    return inputs[:n_data]


def _check_losses(model: onnx.ModelProto, losses: list[LossDecl], data: set[str]) -> None:
    outputs = {vi.name: vi for vi in model.graph.output}
    for i, decl in enumerate(losses):
        where, vi = f"config.losses[{i}]", outputs.get(decl.output)
        if vi is None:
            raise bad(where, f"output {decl.output!r} is not a graph output ({sorted(outputs)})")
        if elem_dtype(vi) not in _FLOAT_TYPES.values() or dims(vi) not in ([], [1], None):
            raise bad(where, f"loss output {decl.output!r} must be a float scalar, found {elem_dtype(vi)} "
                             f"of shape {dims(vi)}")
        if not decl.conditional:
            reads = depends_on(model.graph, [decl.output]) & data
            if reads:
                raise bad(where, f"unconditional loss output {decl.output!r} depends on input {sorted(reads)[0]!r}; "
                                 "declare it conditional, or compute it from variables only")


def _check_updates(model: onnx.ModelProto, updates: list[UpdateDecl], variables: list[VariableDecl]) -> None:
    outputs = {vi.name: vi for vi in model.graph.output}
    by_name = {v.name: v for v in variables}
    for i, decl in enumerate(updates):
        where, vi, var = f"config.updates[{i}]", outputs.get(decl.output), by_name.get(decl.variable)
        if vi is None:
            raise bad(where, f"output {decl.output!r} is not a graph output ({sorted(outputs)})")
        if var is None:
            raise bad(where, f"update output {decl.output!r} names unknown variable {decl.variable!r} "
                             f"(variables: {sorted(by_name)})")
        if var.trainable:
            raise bad(where, f"update output {decl.output!r} names trainable variable {decl.variable!r}; updates "
                             "assign non-trainable variables (declare it with trainable: false)")
        shape = dims(vi)
        if elem_dtype(vi) != var.dtype or (shape is not None and len(shape) != len(var.shape)):
            raise bad(where, f"update output {decl.output!r} ({elem_dtype(vi)}, shape {shape}) does not match "
                             f"variable {var.name!r} ({var.dtype}, shape {list(var.shape)})")


def _check_outputs(model: onnx.ModelProto, extras: list[str]) -> int:
    """The number of layer outputs: graph outputs before the loss and update outputs."""
    names = [vi.name for vi in model.graph.output]
    for i, name in enumerate(extras):
        if name in extras[:i]:
            raise bad("config.model", f"graph output {name!r} is declared as a loss or update twice")
    n_outputs = len(names) - len(extras)
    if n_outputs < 1 or any(n in extras for n in names[:n_outputs]):
        raise bad("config.model", f"graph outputs {names}: the layer's outputs come first, then the outputs "
                                  f"declared as losses or updates ({extras})")
    return n_outputs


def check_graph(model: onnx.ModelProto, variables: list[VariableDecl], losses: list[LossDecl],
                updates: list[UpdateDecl], training: str | None, n_specs: int | None) -> None:
    """The graph's inputs and outputs against the declarations (see the module docstring)."""
    data = _split_inputs(model, variables, training)
    if n_specs is not None and n_specs != len(data):
        raise bad("config.input_spec", f"lists {n_specs} specs for a layer with {len(data)} input(s)")
    names = {vi.name for vi in data} | ({training} if training else set())
    _check_losses(model, losses, names)
    _check_updates(model, updates, variables)
    _check_outputs(model, [d.output for d in losses] + [d.output for d in updates])
