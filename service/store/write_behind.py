"""Write-behind for the state directory: value-only commits answered before they are written.

A training loop commits every variable and slot each step (about 10 MB for a small MLP); writing
that before each answer costs more than the step itself. With write-behind, a commit that only
changes values (no definition, record, structure or blob) is stamped and kept here: the graph's
values mapping as of that revision (copy-on-write, so later commits never change it), the names
changed since the last write, and the revision each was last changed at. A background thread
writes each graph's latest kept state as one journal record every ``interval_s``. Any other
commit takes the kept names along in its own record, before its answer.

What a crash loses: at most ``interval_s`` of acknowledged value commits, never a part of one
(a record is all or nothing), so the variables are always as after a whole number of steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from layerserve.server.core.graph import Graph
from layerserve.server.store.versions import Changes

__all__ = ["Kept", "WriteBehind"]

log = logging.getLogger("layerserve.store")


@dataclass
class Kept:
    """A graph's value commits not yet written."""

    revision: int  # the revision of the newest
    values: Mapping[str, np.ndarray]  # the graph's values as of that revision
    stamps: dict[str, int] = field(default_factory=dict)  # changed variable -> the revision it changed at

    def absorb(self, graph: Graph, changes: Changes) -> None:
        self.revision, self.values = changes.revision, graph.values
        for name in changes.values:
            self.stamps[name] = changes.revision


Writer = Callable[[str], None]  # takes a graph's kept commits and writes them (OSError when it cannot)


class WriteBehind:
    """The kept commits of every graph, and the thread that has them written every
    ``interval_s``. ``write`` is called with no lock of this object held."""

    def __init__(self, interval_s: float, write: Writer) -> None:
        self.interval_s = interval_s
        self._write = write
        self._kept: dict[str, Kept] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None  # why a write of the last round failed; None once a round succeeds

    def keep(self, graph: Graph, changes: Changes) -> None:
        """Hold ``changes`` (just stamped on ``graph``) for the next background write."""
        with self._lock:
            self._kept.setdefault(graph.name, Kept(changes.revision, graph.values)).absorb(graph, changes)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="layerserve-write-behind", daemon=True)
                self._thread.start()

    def take(self, name: str) -> Kept | None:
        """The graph's kept commits, now the caller's to write (or to ``give_back``)."""
        with self._lock:
            return self._kept.pop(name, None)

    def give_back(self, name: str, kept: Kept) -> None:
        """A write of ``kept`` failed: keep it again, under anything kept since."""
        with self._lock:
            newer = self._kept.get(name)
            if newer is not None:
                kept.revision, kept.values = newer.revision, newer.values
                kept.stamps.update(newer.stamps)
            self._kept[name] = kept

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        """Write every graph's kept commits now."""
        with self._lock:
            names = list(self._kept)
        failure = None
        for name in names:
            try:
                self._write(name)
            except OSError as exc:
                failure = f"{exc.strerror or exc}"
                log.error("could not write graph %s's acknowledged commits to the state directory: %s", name, exc)
        self.failure = failure

    def close(self) -> None:
        """Stop the thread and write what is kept."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
