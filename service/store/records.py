"""A layer's records (conditional losses, pending updates) as stored: objects plus an inline tail.

Rewriting every record on every recorded apply made an apply's cost grow with
``max_records_per_layer``. Instead a layer's records are stored as

    objects  immutable objects (blob files, Redis keys), oldest first, each written once;
    drop     how many of the objects' records were evicted or consumed from the front;
    tail     the records after the objects', inline in the layer's index, which a commit
             rewrites anyway (in the journal record, or as the Redis entry ``R:<id>``).

A commit keeps the longest run of the objects' records that still starts the layer's list,
counts what left the front, and makes the rest of the list the tail: new records join it,
records consumed from it (``run_updates`` of a recent input) simply leave it, and only its new
records are encoded. Objects wholly behind the front are dropped. When the tail outgrows its
budget it is spilled into a new object, merged with the newest objects while they are no larger
(a binary counter: each record is rewritten O(log n) times, never all of them per apply). When
more records are dropped than live, or objects pile up past ``MAX_OBJECTS``, the live records are
compacted: inline when they fit, else into one object.

What changed is found by identity: records are immutable objects, shared by a layer's lists and
the stored state. A list that no longer runs through the objects' records (``run_updates``
consuming one out of the middle of an object) drops all of them and keeps everything in the
tail, which the rules above then compact: always correct, merely not incremental.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from layerserve.server.core.layer import ConditionalLoss, PendingUpdate
from layerserve.server.store.codec import decode_records, loss_to_json, update_to_json

__all__ = ["EMPTY", "MAX_OBJECTS", "StoredRecords", "TAIL_BYTES", "TAIL_RECORDS", "decode_object", "from_index",
           "index_objects", "plan"]

TAIL_RECORDS = 64  # records inline per layer, at most
TAIL_BYTES = 64 * 1024  # their array bytes, at most (a store may give a layer less)
MAX_OBJECTS = 32  # past this many objects a layer's records are compacted (the binary counter keeps ~log2)

Records = tuple[tuple[ConditionalLoss, ...], tuple[PendingUpdate, ...]]
Encoded = tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]
Written = list[tuple[str, bytes]]  # new objects: (name, bytes)
_ENCODE: tuple[Callable[[Any], dict[str, Any]], Callable[[Any], dict[str, Any]]] = (loss_to_json, update_to_json)
_NONE: Records = ((), ())


@dataclass(frozen=True)
class StoredRecords:
    """One layer's records as a commit left them (in each pair, 0: losses, 1: updates)."""

    objects: tuple[tuple[str, Records], ...] = ()
    tail: Records = _NONE
    tail_json: Encoded = ((), ())  # the tail, encoded (kept, so that a commit encodes only new records)
    drop: tuple[int, int] = (0, 0)  # of the objects' records

    def held(self, k: int) -> tuple[Any, ...]:
        """The objects' records of kind ``k``, dropped ones included."""
        return tuple(itertools.chain.from_iterable(records[k] for _, records in self.objects))

    def live(self) -> Records:
        return self.held(0)[self.drop[0]:] + self.tail[0], self.held(1)[self.drop[1]:] + self.tail[1]

    def names(self) -> list[str]:
        return [name for name, _ in self.objects]

    @cached_property
    def inline_bytes(self) -> int:
        return _weight(self.tail)

    @cached_property
    def index_text(self) -> str:
        """The layer's index as JSON: the objects by name and size, the tail in full."""
        return json.dumps({"objects": [[name, [len(r[0]), len(r[1])]] for name, r in self.objects],
                           "drop": list(self.drop),
                           "tail": {"losses": list(self.tail_json[0]), "updates": list(self.tail_json[1])}})


EMPTY = StoredRecords()


def decode_object(data: bytes) -> Records:
    return decode_records(json.loads(data))


def _encode(records: Records, known: Encoded = ((), ())) -> bytes:
    """An object's bytes; ``known``: the encoded form of the last records, where at hand."""
    out = []
    for k in (0, 1):
        head = records[k][:len(records[k]) - len(known[k])]
        out.append([*map(_ENCODE[k], head), *known[k]])
    return json.dumps({"losses": out[0], "updates": out[1]}).encode()


def _normalize(index: str | dict[str, Any]) -> dict[str, Any]:
    """Earlier layouts: the name of one blob holding every record, or every record inline."""
    if isinstance(index, str):
        return {"objects": [[index, None]], "drop": [0, 0], "tail": {"losses": [], "updates": []}}
    if "tail" not in index:
        return {"objects": [], "drop": [0, 0], "tail": index}
    return index


def index_objects(index: str | dict[str, Any]) -> list[str]:
    """The names of the objects a stored index refers to."""
    return [name for name, _ in _normalize(index)["objects"]]


def from_index(index: str | dict[str, Any], objects: dict[str, Records]) -> StoredRecords:
    """A stored index with its objects (name -> records); checks each object's size."""
    index = _normalize(index)
    held = []
    for name, size in index["objects"]:
        records = objects[name]
        if size is not None and [len(r) for r in records] != list(size):
            raise ValueError(f"record object {name!r} holds {[len(r) for r in records]} records, its index says {size}")
        held.append((name, records))
    tail = index["tail"]
    return StoredRecords(tuple(held), decode_records(tail), (tuple(tail["losses"]), tuple(tail["updates"])),
                         (index["drop"][0], index["drop"][1]))


def plan(prev: StoredRecords, losses: Sequence[ConditionalLoss], updates: Sequence[PendingUpdate],
         new_name: Callable[[], str], budget: int = TAIL_BYTES) -> tuple[StoredRecords, Written]:
    """How to store the layer's current records after ``prev``: the new state, and the new
    objects to write before the commit point. ``budget``: the tail's array bytes, at most."""
    current = (tuple(losses), tuple(updates))
    splits = [_split(prev.held(k), prev.drop[k], current[k]) for k in (0, 1)]
    known = {id(r): j for k in (0, 1) for r, j in zip(prev.tail[k], prev.tail_json[k])}
    tail = (splits[0][1], splits[1][1])
    encoded = tuple(tuple(known.get(id(r)) or _ENCODE[k](r) for r in tail[k]) for k in (0, 1))
    state = _trim(StoredRecords(prev.objects, tail, encoded, (splits[0][0], splits[1][0])))  # type: ignore[arg-type]
    spill = not _fits(state.tail, budget)
    if len(state.objects) + spill > MAX_OBJECTS or sum(state.drop) > len(current[0]) + len(current[1]):
        return _compact(state, current, new_name, budget)
    return _spill(state, new_name) if spill else (state, [])


def _split(held: tuple[Any, ...], drop: int, current: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """(how many of the objects' records ``held`` are dropped, the records of ``current`` after
    the rest of them): ``current`` must start with ``held[j:]`` for the ``j`` returned."""
    if current:
        first = current[0]
        for j in range(drop, len(held)):
            if held[j] is first:
                kept = len(held) - j
                if kept <= len(current) and all(map(operator.is_, held[j:], current)):
                    return j, current[kept:]
                break
    return len(held), current


def _trim(state: StoredRecords) -> StoredRecords:
    """Objects wholly behind the front go."""
    objects, drop = list(state.objects), list(state.drop)
    while objects and all(drop[k] >= len(objects[0][1][k]) for k in (0, 1)):
        _, records = objects.pop(0)
        drop = [drop[k] - len(records[k]) for k in (0, 1)]
    return StoredRecords(tuple(objects), state.tail, state.tail_json, (drop[0], drop[1]))


def _spill(state: StoredRecords, new_name: Callable[[], str]) -> tuple[StoredRecords, Written]:
    """The tail becomes an object, merged with the newest objects while they are no larger."""
    objects, merged, known = list(state.objects), state.tail, state.tail_json
    while objects and _count(objects[-1][1]) <= _count(merged):
        older = objects.pop()[1]
        merged = (older[0] + merged[0], older[1] + merged[1])
    name = new_name()
    objects.append((name, merged))
    return StoredRecords(tuple(objects), drop=state.drop), [(name, _encode(merged, known))]


def _compact(state: StoredRecords, live: Records, new_name: Callable[[], str],
             budget: int) -> tuple[StoredRecords, Written]:
    """All live records in one object, or inline when they fit (the tail ends them, encoded)."""
    if not _fits(live, budget):
        name = new_name()
        return StoredRecords(((name, live),)), [(name, _encode(live, state.tail_json))]
    encoded = tuple(tuple(map(_ENCODE[k], live[k][:len(live[k]) - len(state.tail[k])])) + state.tail_json[k]
                    for k in (0, 1))
    return StoredRecords((), live, encoded), []  # type: ignore[arg-type]


def _count(records: Records) -> int:
    return len(records[0]) + len(records[1])


def _fits(records: Records, budget: int) -> bool:
    return _count(records) <= TAIL_RECORDS and _weight(records) <= budget


def _weight(records: Records) -> int:
    """About what the records take inline: their arrays, refs and some JSON."""
    total = 0
    for c in records[0]:
        total += 96 + len(c.ref) * (1 + len(c.others)) + c.value.nbytes
    for u in records[1]:
        total += 128 + len(u.ref) * (1 + len(u.others)) + u.value.nbytes + (0 if u.stat is None else u.stat.nbytes)
    return total
