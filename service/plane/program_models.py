"""Named programs: a program with named inputs and outputs is a model (OIP v2, ONNX download)."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from layerserve.server.core.graph import Graph
from layerserve.server.core.naming import LAYER_NAME, check_name
from layerserve.server.errors import InvalidArgument, NotFound
from layerserve.server.plane.dataplane import DataPlane
from layerserve.server.plane.program_baking import resident_inputs
from layerserve.server.plane.programs import ProgramPlane
from layerserve.server.plane.transactions import retried

__all__ = ["ProgramModels", "programs_of"]

_planes: weakref.WeakKeyDictionary[DataPlane, ProgramModels] = weakref.WeakKeyDictionary()


def programs_of(plane: DataPlane) -> ProgramModels:
    """The program plane over ``plane`` (one per data plane)."""
    found = _planes.get(plane)
    if found is None:
        found = _planes[plane] = ProgramModels(plane)
    return found


def _aliases(given: Any, names: list[str], what: str) -> dict[str, str]:
    if not isinstance(given, dict) or not given:
        raise InvalidArgument(f"a named program needs its {what} as {{name: tensor}}", code="invalid_program")
    for alias, tensor in given.items():
        check_name(alias, LAYER_NAME, f"{what[:-1]} name")
        if tensor not in names:
            raise InvalidArgument(f"the program has no {what[:-1]} {tensor!r}", code="invalid_program")
    return {str(k): str(v) for k, v in given.items()}


class ProgramModels(ProgramPlane):
    """Programs, and the named ones as models."""

    @retried
    def name_program(self, graph: str, program_id: str, name: str, inputs: Any, outputs: Any) -> dict[str, Any]:
        check_name(name, LAYER_NAME, "program name")
        g = self.plane.graph(graph)
        program = self._program(g, program_id)
        entry = {"id": program_id,
                 "inputs": _aliases(inputs, [i.name for i in program.model.graph.input], "inputs"),
                 "outputs": _aliases(outputs, program.outputs, "outputs")}
        with self.plane._mutation(g):
            g.named_programs[name] = entry
            self.plane._commit(g)
        return entry

    def named(self, graph: str, name: str) -> dict[str, Any] | None:
        try:
            g = self.plane.graph(graph)
        except NotFound:
            return None
        return g.named_programs.get(name)

    def _entry(self, g: Graph, name: str) -> dict[str, Any]:
        entry = g.named_programs.get(name)
        if entry is None:
            raise NotFound(f"graph {g.name!r} has no program named {name[:80]!r}", code="program_not_found")
        return entry

    def run_named(self, graph: str, name: str, feeds: dict[str, np.ndarray], outputs: list[str]
                  ) -> list[np.ndarray]:
        entry = self._entry(self.plane.graph(graph), name)
        unknown = [k for k in feeds if k not in entry["inputs"]] + [o for o in outputs if o not in entry["outputs"]]
        if unknown or len(feeds) != len(entry["inputs"]):
            raise InvalidArgument(f"program {name!r} takes the inputs {sorted(entry['inputs'])} and gives the outputs "
                                  f"{sorted(entry['outputs'])}", code="invalid_infer_request")
        by_tensor = {entry["inputs"][k]: v for k, v in feeds.items()}
        return self.run(graph, entry["id"], by_tensor, [entry["outputs"][o] for o in outputs])

    def metadata(self, graph: str, name: str) -> dict[str, Any]:
        g = self.plane.graph(graph)
        entry = self._entry(g, name)
        program = self._program(g, entry["id"])
        declared = {i.name: i for i in program.model.graph.input}

        def described(info: onnx.ValueInfoProto) -> dict[str, Any]:
            tt = info.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            return {"datatype": helper.tensor_dtype_to_np_dtype(tt.elem_type).name, "shape": dims}
        return {"inputs": {a: described(declared[t]) for a, t in entry["inputs"].items()},
                "outputs": list(entry["outputs"])}

    def export_onnx(self, graph: str, name: str) -> bytes:
        """The named program as one ONNX model: its inputs and outputs by their names, the current
        variable values as initializers, an unknown leading dimension kept dynamic."""
        g = self.plane.graph(graph)
        entry = self._entry(g, name)
        program = self._program(g, entry["id"])
        declared = {i.name: i for i in program.model.graph.input}
        feeds = {}
        for tensor in entry["inputs"].values():
            tt = declared[tensor].type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
            feeds[tensor] = np.zeros(shape, helper.tensor_dtype_to_np_dtype(tt.elem_type))
        compiled = self._compile(g, program, feeds)
        model = onnx.ModelProto()
        model.CopyFrom(compiled.composed.model)
        if compiled.composed.extra_feeds:
            raise InvalidArgument("a program that draws random numbers per run (dropout in training mode) cannot "
                                  "be exported", code="not_exportable")
        _bake(model, resident_inputs(g, compiled.composed, g.values, self.plane.executor))
        _rename(model, entry, compiled.composed.fetch_outputs, program.outputs, declared)
        return bytes(model.SerializeToString())


def _bake(model: onnx.ModelProto, resident: dict[str, np.ndarray]) -> None:
    kept = [i for i in model.graph.input if i.name not in resident]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in resident.items())


def _rename(model: onnx.ModelProto, entry: dict[str, Any], fetch_outputs: list[str], outputs: list[str],
            declared: dict[str, onnx.ValueInfoProto]) -> None:
    """Inputs and outputs by the model's names; the program's writes are dropped; unknown dims dynamic."""
    graph = model.graph
    by_tensor = {t: a for a, t in entry["inputs"].items()}
    for info in graph.input:
        alias = by_tensor[info.name]
        graph.node.insert(0, helper.make_node("Identity", [alias], [info.name]))
        original = declared[info.name]
        info.CopyFrom(original)
        info.name = alias
    composed = dict(zip(outputs, fetch_outputs, strict=True))
    del graph.output[:]
    for alias, tensor in entry["outputs"].items():
        graph.node.append(helper.make_node("Identity", [composed[tensor]], [alias]))
        graph.output.append(onnx.ValueInfoProto(name=alias))
    # In-process: composing inferred this model (less these Identity nodes) within the inference
    # CPU limit, and here the weights are baked in, too big to send to a child for nothing.
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in inferred.graph.value_info}
    for out in graph.output:
        if out.name in types:
            out.type.tensor_type.elem_type = types[out.name].tensor_type.elem_type
    del graph.value_info[:]
