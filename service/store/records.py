"""A layer's records (conditional losses, pending updates) as stored: objects plus an inline tail.

Rewriting every record on every recorded apply made an apply's cost grow with
``max_records_per_layer``. Instead a layer's records are stored as

    objects  immutable objects (blob files, Redis keys), oldest first, each written once;
    tail     the records appended since the last spill, inline in the layer's index, which a
             commit rewrites anyway (in the manifest, or as the Redis entry ``R:<id>``);
    drop     how many of ``objects ++ tail`` were evicted or consumed from the front.

A commit appends its new records to the tail and counts what left the front; objects wholly
behind the front are dropped. When the tail outgrows its budget it is spilled into a new
object, merged with the newest objects while they are no larger (a binary counter: each record
is rewritten O(log n) times, never all of them per apply). When more records are dropped than
live, or objects pile up past ``MAX_OBJECTS``, the live records are compacted: inline when they
fit, else into one object.

What changed since the last commit is found by identity: records are immutable objects, and
between two commits a layer's lists only lose records at the front and gain them at the back.
Anything else (``run_updates`` consuming records out of order) is stored as "all dropped, all
new", which the rules above then compact: always correct, merely not incremental.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from service.core.layer import ConditionalLoss, PendingUpdate
from service.store.codec import decode_records, loss_to_json, update_to_json

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
    drop: tuple[int, int] = (0, 0)

    def stored(self, k: int) -> tuple[Any, ...]:
        return tuple(itertools.chain.from_iterable(records[k] for _, records in self.objects)) + self.tail[k]

    def live(self) -> Records:
        return self.stored(0)[self.drop[0]:], self.stored(1)[self.drop[1]:]

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
    steps = [_step(prev.stored(k), prev.drop[k], current[k]) for k in (0, 1)]
    state = _trim(StoredRecords(
        prev.objects, (prev.tail[0] + steps[0][1], prev.tail[1] + steps[1][1]),
        (prev.tail_json[0] + tuple(map(loss_to_json, steps[0][1])),
         prev.tail_json[1] + tuple(map(update_to_json, steps[1][1]))),
        (prev.drop[0] + steps[0][0], prev.drop[1] + steps[1][0])))
    spill = not _fits(state.tail, budget)
    if len(state.objects) + spill > MAX_OBJECTS or sum(state.drop) > len(current[0]) + len(current[1]):
        return _compact(state, current, new_name, budget)
    return _spill(state, new_name) if spill else (state, [])


def _step(stored: tuple[Any, ...], drop: int, current: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """(how many live stored records ``current`` lost at the front, the records it gained)."""
    if current:
        first = current[0]
        for j in range(drop, len(stored)):
            if stored[j] is first:
                kept = len(stored) - j
                if kept <= len(current) and all(map(operator.is_, stored[j:], current)):
                    return j - drop, current[kept:]
                break
    return len(stored) - drop, current


def _trim(state: StoredRecords) -> StoredRecords:
    """Objects wholly behind the front go; with none left, so do the tail's dropped records."""
    objects, drop = list(state.objects), list(state.drop)
    while objects and all(drop[k] >= len(objects[0][1][k]) for k in (0, 1)):
        _, records = objects.pop(0)
        drop = [drop[k] - len(records[k]) for k in (0, 1)]
    if objects:
        return StoredRecords(tuple(objects), state.tail, state.tail_json, (drop[0], drop[1]))
    tail = (state.tail[0][drop[0]:], state.tail[1][drop[1]:])
    return StoredRecords((), tail, (state.tail_json[0][drop[0]:], state.tail_json[1][drop[1]:]))


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
    """All live records in one object, or inline when they fit."""
    # the tail is a suffix of the stored records, so its encoded records end ``live`` or hold it
    known = tuple(j[len(j) - min(len(j), len(live[k])):] for k, j in enumerate(state.tail_json))
    if not _fits(live, budget):
        name = new_name()
        return StoredRecords(((name, live),)), [(name, _encode(live, known))]  # type: ignore[arg-type]
    encoded = tuple(tuple(map(_ENCODE[k], live[k][:len(live[k]) - len(known[k])])) + known[k] for k in (0, 1))
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
