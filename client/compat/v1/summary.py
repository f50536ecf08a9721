"""``tf.summary`` of TF1: ``scalar``, ``histogram``, ``merge``, ``merge_all`` and ``FileWriter``
(TensorBoard event files).

A summary op adds no ONNX node to the program: ``Session.run`` fetches the tensors the
summaries read in the same server run as the other fetches (so a loss and its summary come
from one computation), then encodes each summary here as TensorFlow's serialized ``Summary``
message, built with TensorBoard's own message classes. A histogram uses TensorFlow's bucket
boundaries and its encoding of empty runs, so TensorBoard draws it as it draws TensorFlow's.

The message classes and the event file writer come from the ``tensorboard`` package
(``pip install 'layerserve[summary]'``), imported when a summary is first evaluated or a
writer opened: building a graph with summaries needs nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from layerserve.compat.v1.dtypes import string
from layerserve.compat.v1.graph import Graph, GraphKeys, Tensor, TensorShape, get_default_graph

__all__ = ["FileWriter", "FileWriterCache", "SummaryPlan", "histogram", "merge", "merge_all", "scalar", "summary_plan"]

SUMMARY_OPS = ("ScalarSummary", "HistogramSummary", "MergeSummary")


def _tensorboard() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2, graph_pb2, node_def_pb2, summary_pb2
    except ImportError:
        raise ImportError("tf.summary needs the tensorboard package: pip install 'layerserve[summary]'") from None
    return summary_pb2, event_pb2, graph_pb2, node_def_pb2


def _as_tensor(value: Any, name: str) -> Tensor:
    from layerserve.compat.v1.math_ops import convert_to_tensor

    return convert_to_tensor(value, name=name)


def _summary_op(op_type: str, name: str, inputs: Sequence[Tensor], collections: Sequence[str] | None,
                graph: Graph) -> Tensor:
    op = graph.new_operation(op_type, name, list(inputs))
    out = graph.add_output(op, string, TensorShape([]))
    for key in (list(collections) if collections is not None else [GraphKeys.SUMMARIES]):
        graph.add_to_collection(key, out)
    return out


def scalar(name: str, tensor: Any, collections: Sequence[str] | None = None, family: str | None = None) -> Tensor:
    """A scalar summary; its tag is the op's name (``loss``, ``loss_1`` for a second one, with
    the name scope in front), as TF1's."""
    t = _as_tensor(tensor, "Const")
    if t.shape.ndims not in (None, 0):
        raise ValueError(f"Tags and values not the same shape: [] != {t.shape.as_list()} (tag '{name}')")
    return _summary_op("ScalarSummary", f"{family}/{name}" if family else name, [t], collections, t.graph)


def histogram(name: str, values: Any, collections: Sequence[str] | None = None, family: str | None = None
              ) -> Tensor:
    t = _as_tensor(values, "Const")
    return _summary_op("HistogramSummary", f"{family}/{name}" if family else name, [t], collections, t.graph)


def merge(inputs: Sequence[Tensor], collections: Sequence[str] | None = None, name: str | None = None) -> Tensor:
    """One summary holding every value of ``inputs`` (summaries, merged ones included)."""
    tensors = list(inputs)
    if not tensors:
        raise ValueError("merge takes at least one summary")
    for t in tensors:
        if not isinstance(t, Tensor) or t.op is None or t.op.type not in SUMMARY_OPS:
            raise TypeError(f"merge takes summary tensors, got {t!r}")
    return _summary_op("MergeSummary", name or "Merge/MergeSummary", tensors, collections or [], tensors[0].graph)


def merge_all(key: str = GraphKeys.SUMMARIES, scope: str | None = None, name: str | None = None) -> Tensor | None:
    """The merge of the graph's ``key`` collection, or None when it is empty (TF1)."""
    found = get_default_graph().get_collection(key, scope)
    return merge(found, name=name) if found else None


# ---- evaluation, in Session.run ---------------------------------------------------------------
_LIMITS: np.ndarray | None = None


def _bucket_limits() -> np.ndarray:
    """TensorFlow's default histogram boundaries: +-1e-12 * 1.1**k up to 1e20, 0, and DBL_MAX."""
    global _LIMITS
    if _LIMITS is None:
        positive = [1e-12]
        while positive[-1] * 1.1 < 1e20:
            positive.append(positive[-1] * 1.1)
        positive.append(float(np.finfo(np.float64).max))
        _LIMITS = np.array([-v for v in reversed(positive)] + [0.0] + positive, dtype=np.float64)
    return _LIMITS


def _histogram_proto(values: np.ndarray, summary_pb2: Any) -> Any:
    flat = np.asarray(values, dtype=np.float64).ravel()
    limits = _bucket_limits()
    counts = np.bincount(np.searchsorted(limits, flat, side="right"), minlength=limits.size)[:limits.size]
    proto = summary_pb2.HistogramProto(
        min=float(flat.min()) if flat.size else float(limits[-1]), max=float(flat.max()) if flat.size else -float(limits[-1]),
        num=float(flat.size), sum=float(flat.sum()), sum_squares=float(np.dot(flat, flat)))
    i = 0
    while i < limits.size:  # a run of empty buckets is one entry ending at the run's last limit
        end, count = limits[i], counts[i]
        i += 1
        if count <= 0:
            while i < limits.size and counts[i] <= 0:
                end, count = limits[i], counts[i]
                i += 1
        proto.bucket_limit.append(float(end))
        proto.bucket.append(float(count))
    return proto


def _leaves(t: Tensor, into: list[Tensor]) -> None:
    assert t.op is not None
    if t.op.type == "MergeSummary":
        for part in t.op.inputs:
            _leaves(part, into)
    else:
        into.append(t)


class SummaryPlan:
    """The fetches of a run with each summary replaced by the tensors it reads, and how to
    turn their values back into serialized summaries."""

    def __init__(self, fetches: list[Tensor]) -> None:
        self.fetches: list[Tensor] = []
        self._index: dict[str, int] = {}
        self._outputs: list[tuple[Tensor, list[Tensor]] | int] = []
        for t in fetches:
            if t.op is not None and t.op.type in SUMMARY_OPS:
                leaves: list[Tensor] = []
                _leaves(t, leaves)
                for leaf in leaves:
                    self._need(leaf.op.inputs[0])  # type: ignore[union-attr]
                self._outputs.append((t, leaves))
            else:
                self._outputs.append(self._need(t))

    def _need(self, t: Tensor) -> int:
        if t.name not in self._index:
            self._index[t.name] = len(self.fetches)
            self.fetches.append(t)
        return self._index[t.name]

    def results(self, values: list[Any]) -> list[Any]:
        out = []
        for item in self._outputs:
            if isinstance(item, int):
                out.append(values[item])
            else:
                out.append(self._encode(item[1], values))
        return out

    def _encode(self, leaves: list[Tensor], values: list[Any]) -> bytes:
        summary_pb2 = _tensorboard()[0]
        summary = summary_pb2.Summary()
        for leaf in leaves:
            assert leaf.op is not None
            value = np.asarray(values[self._index[leaf.op.inputs[0].name]])
            if leaf.op.type == "ScalarSummary":
                summary.value.add(tag=leaf.op.name, simple_value=float(value))
            else:
                summary.value.add(tag=leaf.op.name, histo=_histogram_proto(value, summary_pb2))
        return bytes(summary.SerializeToString())


def summary_plan(fetches: list[Tensor]) -> SummaryPlan | None:
    """A plan when the fetches hold a summary, else None (the run goes as it is)."""
    if any(t.op is not None and t.op.type in SUMMARY_OPS for t in fetches):
        return SummaryPlan(fetches)
    return None


# ---- writing ----------------------------------------------------------------------------------
def _graph_def(graph: Graph, graph_pb2: Any, node_def_pb2: Any) -> Any:
    """The graph as TensorBoard's graph tab reads it: one node per operation, its inputs and
    control inputs by name."""
    out = graph_pb2.GraphDef()
    for op in graph.get_operations():
        node = node_def_pb2.NodeDef(name=op.name, op=op.type)
        for t in op.inputs:
            if t.op is not None:
                node.input.append(t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}")
        node.input.extend(f"^{c.name}" for c in op.control_inputs)
        out.node.append(node)
    return out


class FileWriter:
    """TF1's ``tf.summary.FileWriter``: events in ``logdir`` that TensorBoard reads."""

    def __init__(self, logdir: str, graph: Graph | None = None, max_queue: int = 10, flush_secs: float = 120,
                 graph_def: Any = None, filename_suffix: str | None = None, session: Any = None) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._logdir = str(logdir)
        self._writer = EventFileWriter(self._logdir, max_queue, flush_secs, filename_suffix or "")
        self._closed = False
        if graph is not None or graph_def is not None:
            self.add_graph(graph, graph_def=graph_def)

    def get_logdir(self) -> str:
        return self._logdir

    def add_event(self, event: Any) -> None:
        if self._closed:
            raise RuntimeError("the FileWriter is closed")  # TF1 reopens only through reopen()
        self._writer.add_event(event)

    def _event(self, step: int | None = None, **fields: Any) -> Any:
        event_pb2 = _tensorboard()[1]
        event = event_pb2.Event(wall_time=time.time(), **fields)
        if step is not None:
            event.step = int(step)
        return event

    def add_summary(self, summary: Any, global_step: int | None = None) -> None:
        """``summary``: what ``Session.run`` returned for a summary (bytes), or a Summary message."""
        summary_pb2 = _tensorboard()[0]
        if isinstance(summary, (bytes, bytearray)):
            summary = summary_pb2.Summary.FromString(bytes(summary))
        self.add_event(self._event(global_step, summary=summary))

    def add_graph(self, graph: Graph | None, global_step: int | None = None, graph_def: Any = None) -> None:
        _, _, graph_pb2, node_def_pb2 = _tensorboard()
        if graph_def is None:
            if graph is None:
                raise ValueError("add_graph needs a graph or a graph_def")
            graph_def = _graph_def(graph, graph_pb2, node_def_pb2)
        self.add_event(self._event(global_step, graph_def=graph_def.SerializeToString()))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if not self._closed:
            self._writer.close()
            self._closed = True

    def reopen(self) -> None:
        if self._closed:
            self._writer.reopen()
            self._closed = False

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileWriterCache:
    """One writer per log directory (TF1's cache)."""

    _cache: ClassVar[dict[str, FileWriter]] = {}

    @classmethod
    def get(cls, logdir: str) -> FileWriter:
        if logdir not in cls._cache:
            cls._cache[logdir] = FileWriter(logdir)
        return cls._cache[logdir]

    @classmethod
    def clear(cls) -> None:
        for writer in cls._cache.values():
            writer.close()
        cls._cache.clear()

