"""``tf.Session``: each ``run`` is one request running a registered program on the server."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from layerserve.compat.v1 import errors
from layerserve.compat.v1.graph import Graph, Operation, Tensor, get_default_graph
from layerserve.compat.v1.program import Program, build_program, prune
from layerserve.compat.v1.server import binding
from layerserve.compat.v1.summary import summary_plan
from layerserve.exceptions import LayerServeError, NotFoundError

__all__ = ["InteractiveSession", "Session", "export", "get_default_session"]

_default_sessions: list[Session] = []


def get_default_session() -> Session:
    if not _default_sessions:
        raise ValueError("Cannot evaluate tensor using `eval()`: No default session is registered. Use `with "
                         "sess.as_default()` or pass an explicit session to `eval(session=sess)`")
    return _default_sessions[-1]


class _Fetches:
    """A nest of fetches flattened to graph elements, and rebuilt around the results."""

    def __init__(self, graph: Graph, fetches: Any) -> None:
        self.graph = graph
        self.elements: list[Tensor | Operation] = []
        self.structure = self._flatten(fetches)

    def _flatten(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return (type(value), [(k, self._flatten(v)) for k, v in value.items()])
        if isinstance(value, (list, tuple)) and not isinstance(value, str):
            items = [self._flatten(v) for v in value]
            return (type(value), items)
        if value is None:
            raise TypeError(f"Fetch argument {value!r} has invalid type {type(value)}, must be a string or Tensor. "
                            "(Can not convert a NoneType into a Tensor or Operation.)")
        try:
            element = self.graph.as_graph_element(value)
        except ValueError as exc:
            raise ValueError(f"Fetch argument {value!r} cannot be interpreted as a Tensor. ({exc})") from None
        except KeyError as exc:
            raise ValueError(f"Fetch argument {value!r} cannot be interpreted as a Tensor. ({exc.args[0]})") from None
        self.elements.append(element)
        return len(self.elements) - 1

    def rebuild(self, values: list[Any], node: Any = None) -> Any:
        node = self.structure if node is None else node
        if isinstance(node, int):
            return values[node]
        kind, items = node
        if items and isinstance(items[0], tuple) and len(items[0]) == 2 and issubclass(kind, Mapping):
            return kind((k, self.rebuild(values, v)) for k, v in items)
        if issubclass(kind, Mapping):
            return kind()
        rebuilt = [self.rebuild(values, v) for v in items]
        if hasattr(kind, "_fields"):  # a namedtuple
            return kind(*rebuilt)
        return kind(rebuilt)


def _as_result(array: np.ndarray) -> Any:
    if array.ndim == 0:
        return array.dtype.type(array[()]) if array.dtype.kind != "O" else array[()]
    return array


class Session:
    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None) -> None:
        self.graph = graph or get_default_graph()
        self._target = target or None
        self._closed = False
        self._programs: dict[tuple[Any, ...], Program | None] = {}

    # ---- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Session:
        _default_sessions.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if _default_sessions and _default_sessions[-1] is self:
            _default_sessions.pop()
        self.close()

    def as_default(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def scope() -> Any:
            _default_sessions.append(self)
            try:
                yield self
            finally:
                _default_sessions.remove(self)
        return scope()

    @property
    def sess_str(self) -> str:
        return self._target or ""

    # ---- run -------------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        spec = _Fetches(self.graph, fetches)
        feeds = self._feeds(feed_dict)
        tensors = [e for e in spec.elements if isinstance(e, Tensor)]
        targets = [e for e in spec.elements if isinstance(e, Operation)]
        summaries = summary_plan(tensors)  # summaries: their tensors fetched in this same run
        values = self._run(tensors if summaries is None else summaries.fetches, targets, feeds)
        if summaries is not None:
            values = summaries.results(values)
        by_name = dict(zip([t.name for t in tensors], values))
        results = [None if isinstance(e, Operation) else by_name[e.name] for e in spec.elements]
        return spec.rebuild(results)

    def _feeds(self, feed_dict: Any) -> dict[str, tuple[Tensor, np.ndarray]]:
        out: dict[str, tuple[Tensor, np.ndarray]] = {}
        for key, value in (feed_dict or {}).items():
            tensor = self.graph.as_graph_element(key)
            if not isinstance(tensor, Tensor):
                raise TypeError(f"The value of a feed cannot be a tf.Operation object: {key!r}")
            if tensor.dtype == "string":
                raise TypeError("string feeds are not supported")
            # numpy's conversion, as TF's feed does (a float fed to an int placeholder is truncated;
            # text raises ValueError)
            array = np.asarray(np.asarray(value, dtype=tensor.dtype.as_numpy_dtype), order="C")
            if not tensor.shape.is_compatible_with(array.shape):
                raise ValueError(f"Cannot feed value of shape {array.shape} for Tensor {tensor.name}, which has "
                                 f"shape {_shape_text(tensor)}")
            out[tensor.name] = (tensor, array)
        return out

    def _run(self, fetches: list[Tensor], targets: list[Operation], feeds: dict[str, tuple[Tensor, np.ndarray]]
             ) -> list[Any]:
        program = self._program(fetches, targets, feeds)
        if program is None:
            return []
        b = binding(self.graph, self._target)
        arrays = [feeds[name][1] for name in program.feeds]
        header = {"feeds": program.feeds, "fetches": program.fetches}
        for attempt in range(2):
            program_id = b.programs.get(program.digest)
            if program_id is None:
                program_id = self._register(program)
            try:
                result = b.conn.call("POST", f"/v1/graphs/{b.conn.graph}/programs/{program_id}:run", header,
                                     tensors=arrays, accept_tensors=True, request_key="values")
                break
            except NotFoundError as exc:
                if exc.code != "program_not_found" or attempt:
                    raise errors.from_server(exc) from None
                b.programs.pop(program.digest, None)  # a restarted server or another replica: register again
            except LayerServeError as exc:
                raise errors.from_server(exc) from None
        by_name = dict(zip(program.fetches, result.tensors))
        return [_as_result(by_name[t.name].copy()) for t in fetches]

    def _needed(self, fetches: list[Tensor], targets: list[Operation],
                feeds: dict[str, tuple[Tensor, np.ndarray]]) -> list[Operation]:
        return prune(self.graph, fetches, targets, set(feeds)) if (fetches or targets) else []

    def _program(self, fetches: list[Tensor], targets: list[Operation],
                 feeds: dict[str, tuple[Tensor, np.ndarray]]) -> Program | None:
        """The run's program, kept by fetches, targets and fed names (a training loop prunes
        once); None for a run that fetches nothing and changes nothing."""
        key = (tuple(t.name for t in fetches), tuple(op.name for op in targets), tuple(sorted(feeds)))
        if key in self._programs:
            return self._programs[key]
        ops = self._needed(fetches, targets, feeds)
        program = None
        if fetches or any(op.stateful for op in ops):
            used = {i for op in ops for n in op.nodes for i in n.inputs}
            used |= {t.name for t in fetches}
            self._check_placeholders(ops, feeds)
            feed_list = [feeds[name][0] for name in sorted(feeds) if name in used]
            program = build_program(self.graph, ops, feed_list, fetches)
        self._programs[key] = program
        return program

    @staticmethod
    def _check_placeholders(ops: list[Operation], feeds: dict[str, Any]) -> None:
        for op in ops:
            if op.type == "Placeholder" and op.outputs[0].name not in feeds:
                t = op.outputs[0]
                raise errors.InvalidArgumentError(
                    None, op, f"You must feed a value for placeholder tensor '{op.name}' with dtype "
                    f"{t.dtype.tf_name} and shape {_shape_brackets(t)}\n\t [[{{{{node {op.name}}}}}]]")

    def _register(self, program: Program) -> str:
        b = binding(self.graph, self._target)
        try:
            body = b.post("/programs", {"model": base64.b64encode(program.model).decode()}).body
        except LayerServeError as exc:
            raise errors.from_server(exc) from None
        b.programs[program.digest] = body["id"]
        return str(body["id"])


class InteractiveSession(Session):
    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None) -> None:
        super().__init__(target, graph, config)
        _default_sessions.append(self)

    def close(self) -> None:
        super().close()
        if self in _default_sessions:
            _default_sessions.remove(self)


def _shape_text(t: Tensor) -> str:
    dims = t.shape.dims
    if dims is None:
        return "<unknown>"
    if len(dims) == 1:
        return f"({dims[0]},)"
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ")"


def _shape_brackets(t: Tensor) -> str:
    dims = t.shape.dims
    if dims is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def export(sess: Session, name: str, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> str:
    """Register the program computing ``outputs`` from ``inputs`` under ``name``: it becomes the OIP v2
    model ``{graph}.{name}`` (``/v2/models/{graph}.{name}/infer``) and an ONNX model with the current
    variable values (``GET /v1/graphs/{graph}/programs/{name}/onnx``). Returns the model's name."""
    fetches = [sess.graph.as_graph_element(t) for t in outputs.values()]
    feeds = [sess.graph.as_graph_element(t) for t in inputs.values()]
    if not all(isinstance(t, Tensor) for t in [*fetches, *feeds]):
        raise TypeError("export: inputs and outputs are tensors")
    fed = {t.name: (t, np.zeros(0)) for t in feeds if isinstance(t, Tensor)}
    program = sess._program([t for t in fetches if isinstance(t, Tensor)], [], fed)
    if program is None:
        raise ValueError("export: name at least one output")
    b = binding(sess.graph, sess._target)
    body = {"model": base64.b64encode(program.model).decode(), "name": name,
            "inputs": {alias: t.name for alias, t in zip(inputs, feeds, strict=True)},
            "outputs": {alias: t.name for alias, t in zip(outputs, fetches, strict=True)}}
    try:
        answer = b.post("/programs", body).body
    except LayerServeError as exc:
        raise errors.from_server(exc) from None
    b.programs[program.digest] = answer["id"]
    return str(answer["model"])
