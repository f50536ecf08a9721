"""Compose a program into one ONNX model for one feed signature.

Standard nodes are copied; ``ai.layerserve`` nodes are expanded: a variable read becomes a
graph input fed from the resident value, an assign a write output, a layer call the layer's own
ONNX graph inlined (its variables as graph inputs; a bool-tensor ``training`` runs both modes
and selects), a moving-statistics update the moving average of the call's batch statistics.

Shape inference goes through ``infer`` (the server bounds it: see ``runtime.vetting``), since a
program can make it arbitrarily slow for some feeds while ONNX holds the GIL.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import helper, numpy_helper

from layerserve.server.core.program.feeds import graph_feeds
from layerserve.server.core.program.validate import DOMAIN
from layerserve.server.errors import InvalidArgument, LayerServeError
from layerserve.server.layers.kit.onnx_graph import OPSET, onnx_dtype

__all__ = ["Composed", "ExtraFeed", "Infer", "LayerSource", "compose"]

_NP = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


class LayerSource(Protocol):
    def layer(self, layer_id: str) -> Any: ...

    def layer_model(self, layer: Any, dtype: str, shape: tuple[int, ...], *, training: bool
                    ) -> tuple[onnx.ModelProto, list[str]]: ...

    def variable(self, name: str) -> tuple[str, tuple[int, ...]]: ...


class Infer(Protocol):
    """ONNX shape inference (``onnx.shape_inference.infer_shapes`` or a bounded equivalent)."""

    def __call__(self, model: onnx.ModelProto, *, data_prop: bool = False) -> onnx.ModelProto: ...


def _infer_here(model: onnx.ModelProto, *, data_prop: bool = False) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(model, data_prop=data_prop)


@dataclass
class ExtraFeed:
    input: str  # graph input
    layer_id: str
    name: str  # the layer model's extra input
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Composed:
    model: onnx.ModelProto
    fetch_outputs: list[str]  # per program output, in order
    variable_inputs: dict[str, str] = field(default_factory=dict)  # graph input -> variable
    layer_inputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # graph input -> (layer id, feed)
    extra_feeds: list[ExtraFeed] = field(default_factory=list)
    writes: dict[str, str] = field(default_factory=dict)  # variable -> graph output
    stop: set[str] = field(default_factory=set)
    layers: list[str] = field(default_factory=list)  # ids of the hosted layers inlined
    init_inputs: dict[str, str] = field(default_factory=dict)  # graph input -> variable, fed its initial value


@dataclass
class _Call:
    layer: Any
    extras: dict[str, str]
    x_shape: tuple[int, ...]
    dtype: str


class _Composer:
    def __init__(self, program: onnx.ModelProto, feeds: dict[str, tuple[str, tuple[int, ...]]],
                 source: LayerSource, infer: Infer) -> None:
        self.program, self.source, self.infer = program, source, infer
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.inits: list[onnx.TensorProto] = list(program.graph.initializer)
        self.known: dict[str, tuple[int, ...]] = {}
        self.calls: dict[str, _Call] = {}
        self.var_tensors: dict[str, str] = {}  # variable -> the program tensor holding its value
        self.gradients = False
        self.differentiates = any(n.domain == DOMAIN and n.op_type == "Gradients" for n in program.graph.node)
        self.layouts: dict[str, dict[str, str] | None] = {}
        self.out = Composed(onnx.ModelProto(), [])
        self._count = 0
        declared = {i.name: i for i in program.graph.input}
        for name, (dtype, shape) in feeds.items():
            if dtype not in _NP.values():
                raise InvalidArgument(f"feeds of dtype {dtype} are not supported", code="unsupported_dtype",
                                      exception="TypeError")
            if name not in declared:
                raise InvalidArgument(f"the program has no input {name!r}", code="unknown_feed")
            _check_feed_shape(name, shape, declared[name])
            self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
            self.known[name] = shape
        missing = declared.keys() - set(feeds)
        if missing:
            raise InvalidArgument(f"You must feed a value for placeholder tensor '{sorted(missing)[0].split(':')[0]}'",
                                  code="missing_feed", op_error="InvalidArgumentError")

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"~{hint}/{self._count}"

    def node(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, value: Any, dtype: str) -> str:
        name = self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    # ---- variables -----------------------------------------------------------------------
    def variable_input(self, variable: str) -> str:
        name = f"~var/{variable}"
        if name not in self.out.variable_inputs:
            dtype, shape = self.source.variable(variable)
            self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
            self.out.variable_inputs[name] = variable
        return name

    # ---- shapes --------------------------------------------------------------------------
    def shape_of(self, name: str) -> tuple[int, ...]:
        if name in self.known:
            return self.known[name]
        for init in self.inits:
            if init.name == name:
                return tuple(init.dims)
        model = self.model([])
        try:
            inferred = self.infer(model, data_prop=True)
        except LayerServeError:
            raise
        except Exception as exc:  # the program does not fit these feeds
            raise InvalidArgument(f"the program does not fit the fed shapes: {exc}".split("\n")[0],
                                  code="incompatible_feed", op_error="InvalidArgumentError") from None
        for info in inferred.graph.value_info:
            dims = info.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims) and info.type.tensor_type.HasField("shape"):
                self.known[info.name] = tuple(d.dim_value for d in dims)
        if name not in self.known:
            raise InvalidArgument(f"the shape of {name!r} is not known for these feeds", code="unknown_shape")
        return self.known[name]

    def model(self, outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "program", self.inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="layerserve")
        model.ir_version = 8
        return model

    # ---- expansion -----------------------------------------------------------------------
    def run(self, fetches: list[str]) -> Composed:
        for node in self.program.graph.node:
            if node.domain == DOMAIN:
                self.expand(node)
            else:
                self.nodes.append(node)
        if self.gradients:
            self.expand_gradients()
        outputs = []
        for k, name in enumerate(fetches):
            outputs.append(self.output(name, f"~fetch/{k}"))
        self.out.fetch_outputs = [o for o in outputs]
        for k, (variable, value) in enumerate(list(self.out.writes.items())):
            self.out.writes[variable] = self.output(value, f"~write/{k}")
        _produce_outputs_directly(self.nodes, set(self.out.writes.values()))
        self.out.model = self.typed_model([*self.out.fetch_outputs, *self.out.writes.values()])
        return self.out

    def expand_gradients(self) -> None:
        try:
            from layerserve.server.core.gradients import expand_gradient_nodes
        except ImportError:
            raise InvalidArgument("gradients not available: this server cannot form gradients",
                                  code="gradients_unavailable", op="Gradients") from None
        model = self.model([])
        with contextlib.suppress(onnx.shape_inference.InferenceError):  # expanding reports its own errors
            self.infer(model, data_prop=True)  # expanding infers this graph here: its cost is bounded first
        expand_gradient_nodes(model.graph, stop=self.out.stop)
        self.nodes = list(model.graph.node)
        self.inits = list(model.graph.initializer)

    def output(self, value: str, name: str) -> str:
        self.node("Identity", [value], name)
        return name

    def typed_model(self, names: list[str]) -> onnx.ModelProto:
        model = self.model([onnx.ValueInfoProto(name=n) for n in names])
        inferred = self.infer(model)
        types = {v.name: v.type for v in inferred.graph.value_info}
        for out in model.graph.output:
            if out.name in types:
                out.type.CopyFrom(types[out.name])
        return model

    def expand(self, node: onnx.NodeProto) -> None:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        op = node.op_type
        if op == "ReadVariable":
            self.node("Identity", [self.variable_input(attrs["variable"])], node.output[0])
            self.var_tensors[attrs["variable"]] = node.output[0]
        elif op == "Assign":
            self.node("Identity", [node.input[0]], node.output[0])
            self.out.writes[attrs["variable"]] = node.output[0]
        elif op == "InitVariable":  # the variable's initial value, fed per run (see ``init_inputs``)
            name = f"~init/{attrs['variable']}"
            dtype, shape = self.source.variable(attrs["variable"])
            self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
            self.out.init_inputs[name] = attrs["variable"]
            self.node("Identity", [name], node.output[0])
            self.out.writes[attrs["variable"]] = node.output[0]
        elif op == "StopGradient":
            self.node("Identity", [node.input[0]], node.output[0])
            self.out.stop.add(node.output[0])
        elif op == "LayerCall":
            self.layer_call(node, attrs)
        elif op == "LayerUpdate":
            self.layer_update(node, attrs)
        elif op == "Gradients":
            self.nodes.append(node)  # expanded once everything before it is composed
            self.gradients = True
        else:
            raise InvalidArgument(f"the server cannot expand {DOMAIN}.{op}", code="unsupported_op", op=op)

    def layer_call(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        layer = self.source.layer(attrs["layer"])
        x = node.input[0]
        shape = self.shape_of(x)
        dtype = self.dtype_of(x)
        mode = int(attrs.get("training", 0))
        if mode == -1:
            y_train, extras = self.inline(layer, x, shape, dtype, training=True)
            y_infer, _ = self.inline(layer, x, shape, dtype, training=False)
            self.node("Where", [node.input[1], y_train, y_infer], node.output[0])
        else:
            y, extras = self.inline(layer, x, shape, dtype, training=mode == 1)
            self.node("Identity", [y], node.output[0])
        self.calls[node.output[0]] = _Call(layer, extras, shape, dtype)
        if layer.id not in self.out.layers:
            self.out.layers.append(layer.id)

    def dtype_of(self, name: str) -> str:
        for info in self.inputs:
            if info.name == name:
                return _NP[info.type.tensor_type.elem_type]
        model = self.model([])
        inferred = self.infer(model)
        for info in [*inferred.graph.value_info, *inferred.graph.input]:
            if info.name == name:
                return _NP[info.type.tensor_type.elem_type]
        return "float32"

    def inline(self, layer: Any, x: str, shape: tuple[int, ...], dtype: str, *, training: bool
               ) -> tuple[str, dict[str, str]]:
        model, outputs = self.source.layer_model(layer, dtype, shape, training=training)
        prefix = self.fresh(f"L{layer.id}") + "/"
        rename: dict[str, str] = {"": ""}
        for info in model.graph.input:
            rename[info.name] = self.layer_input(layer, info, x, prefix, shape, dtype)
        for init in model.graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = prefix + init.name
            rename[init.name] = copy.name
            self.inits.append(copy)
        for n in model.graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            copy.name = ""
            del copy.input[:]
            copy.input.extend(rename.get(i, prefix + i) for i in n.input)
            del copy.output[:]
            copy.output.extend(rename.setdefault(o, prefix + o) for o in n.output)
            self.nodes.append(copy)
        named = {o.name: rename.get(o.name, prefix + o.name) for o in model.graph.output}
        return named[outputs[0]], {k: named[k] for k in outputs[1:]}

    def layer_input(self, layer: Any, info: onnx.ValueInfoProto, x: str, prefix: str, shape: tuple[int, ...],
                    dtype: str) -> str:
        if info.name == "x":
            return x
        if info.name in layer.kind.extra_inputs:
            name = prefix + info.name
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = name
            self.inputs.append(copy)
            self.out.extra_feeds.append(ExtraFeed(name, layer.id, info.name, shape, dtype))
            return name
        graph_layout = self.graph_layout(layer)
        if graph_layout is not None and info.name in graph_layout:
            return graph_layout[info.name]
        name = f"~layer/{layer.id}/{info.name}"
        if name not in self.out.layer_inputs:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = name
            self.inputs.append(copy)
            self.out.layer_inputs[name] = (layer.id, info.name)
        return name

    def graph_layout(self, layer: Any) -> dict[str, str] | None:
        """The layer's graph inputs computed from the program's variable values (so that gradients
        reach them): as stored, or through the layout change a program that differentiates needs."""
        if layer.id in self.layouts:
            return self.layouts[layer.id]
        values = {}
        for full in layer.variables:
            dtype, shape = self.source.variable(full)
            values[layer.short_name(full)] = (self.var_tensors.get(full) or self.variable_input(full), shape, dtype)
        found: dict[str, str] | None = {k: v[0] for k, v in values.items()}
        if not _feeds_as_stored(layer):
            found = graph_feeds(layer.kind.class_name, values, self.node_with, self.ints) if self.differentiates \
                else None
        self.layouts[layer.id] = found
        return found

    def node_with(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        return self.node(op_type, inputs, **attrs)

    def ints(self, values: list[int]) -> str:
        return self.const(np.asarray(values, np.int64), "int64")

    def layer_update(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        call = self.calls.get(node.input[0])
        variable = attrs["variable"]
        if call is None or "batch_mean" not in call.extras:
            raise InvalidArgument("the program updates a moving statistic of a call that computes none",
                                  code="invalid_program")
        kind = call.layer.kind
        var_dtype, _ = self.source.variable(variable)
        stat = call.extras["batch_mean" if variable.rsplit("/", 1)[-1].startswith("moving_mean") else "batch_variance"]
        if stat == call.extras["batch_variance"] and kind.fused(len(call.x_shape), call.dtype):
            param = int(np.prod(kind.param_shape(call.x_shape)))
            n = int(np.prod(call.x_shape)) // max(param, 1)
            factor = np.float32(n) / np.float32(max(n - 1, 1))
            stat = self.node("Mul", [stat, self.const(factor, var_dtype)])
        # Two calls' updates of one variable in a run apply one after the other, in call order.
        current = self.out.writes.get(variable) or self.variable_input(variable)
        decay = self.const(1.0 - kind.config["momentum"], var_dtype)
        step = self.node("Mul", [self.node("Sub", [current, stat]), decay])
        new = self.node("Sub", [current, step])
        if len(node.input) > 1 and node.input[1]:
            new = self.node("Where", [node.input[1], new, current])
        self.node("Identity", [new], node.output[0])
        self.out.writes[variable] = node.output[0]


def _check_feed_shape(name: str, shape: tuple[int, ...], declared: onnx.ValueInfoProto) -> None:
    """A feed must fit its placeholder's declared shape, as TF's ``Session.run`` checks (its
    ``ValueError`` and text): a shape the program was not written for never reaches composing."""
    tensor = declared.type.tensor_type
    if not tensor.HasField("shape"):  # rank unknown: any shape
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) == len(shape) and all(d is None or d == s for d, s in zip(dims, shape, strict=True)):
        return
    text = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(str(d) for d in dims) + ")"
    raise InvalidArgument(f"Cannot feed value of shape {tuple(shape)} for Tensor {name}, which has shape {text}",
                          code="incompatible_feed", exception="ValueError")


def _produce_outputs_directly(nodes: list[onnx.NodeProto], outputs: set[str]) -> None:
    """Let the node that computes each of ``outputs`` (through a chain of Identity nodes) write
    it under the output's name, and pass the value on to its other readers through an Identity.
    ONNX Runtime drops an Identity unless it produces a graph output, where it copies: a training
    step's writes would be copied once more (megabytes per step) before they leave the run.
    The nodes may be the program's own (cached): changed ones are replaced by changed copies."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in nodes for a in n.attribute):
        return  # a subgraph may read a tensor by name from the outer scope: leave the names alone
    producer = {out: node for node in nodes for out in node.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}  # id(original node) -> what stands in its place
    for node in list(nodes):
        if node.op_type != "Identity" or node.output[0] not in outputs:
            continue
        source = node.input[0]
        while source in producer and producer[source].op_type == "Identity":
            source = producer[source].input[0]
        real = producer.get(source)
        if real is None or id(real) in replaced:  # a graph input or initializer, or a node changed already
            continue
        renamed = onnx.NodeProto()
        renamed.CopyFrom(real)
        renamed.output[list(real.output).index(source)] = node.output[0]
        replaced[id(real)] = [renamed, helper.make_node("Identity", [node.output[0]], [source])]
        replaced[id(node)] = []
    if replaced:  # each new Identity right after its producer: the list stays in topological order
        nodes[:] = [m for n in nodes for m in replaced.get(id(n), [n])]


def _feeds_as_stored(layer: Any) -> bool:
    """Whether the layer's graph takes its variables as stored (no layout change on the host)."""
    from layerserve.server.layers.base import LayerKind

    return type(layer.kind).runtime_feeds is LayerKind.runtime_feeds


def compose(program: onnx.ModelProto, feeds: dict[str, tuple[str, tuple[int, ...]]], fetches: list[str],
            source: LayerSource, *, infer: Infer = _infer_here) -> Composed:
    """The program as one model for these feeds (name -> (dtype, shape)), with ``fetches`` as
    its first outputs and every variable write after them."""
    return _Composer(program, feeds, source, infer).run(fetches)
