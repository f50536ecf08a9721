"""The shared store: graphs in Redis, so that several stateless replicas serve the same layers.

Keys of graph ``g`` (one hash slot, through the ``{g}`` tag)::

    ls:{g}:head              hash: "rev" -> the graph's revision, and per entry -> its revision
    ls:{g}:e:<entry>@<rev>   one immutable version of an entry (canonical JSON, or .npy bytes)
    ls:{g}:h:<entry>         the entry's kept revisions, newest first (the last K)
    ls:{g}:o:<name>          an immutable object: some of a layer's records (``<uuid>.json``, named
                             by its ``R:`` index, see ``records``) or a blob a layer definition
                             refers to (``<sha256>.bin``, a custom layer's model)
    ls:{g}:retired           sorted set: objects no longer referred to, by the revision that dropped them
    ls:graphs                the set of graph names

A commit writes the changed entries' new versions and its new objects and moves the head in one
Lua script, which first compares the head's revision with the one the commit was computed from:
a replica that lost the race gets ``StaleGraph``, reloads and retries. Readers compare one field
("rev") per request and fetch only the versions and objects they lack; keeping K versions lets a
reader that raced a writer still find every version its head names, and a dropped object lives
on for K revisions for the same reason. A recorded apply rewrites only its layer's small index
(the records since the last spill) and, now and then, writes one new object. A commit announces
itself on the pub/sub channel ``ls:commits`` so that replicas may warm early; correctness never
depends on it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from layerserve.server.core.graph import Graph
from layerserve.server.errors import StoreUnavailable
from layerserve.server.store.base import StaleGraph, StateStore
from layerserve.server.store.codec import blob_name, blob_refs, program_refs
from layerserve.server.store.definitions import STRUCTURE
from layerserve.server.store.entries import assemble, decode_entry, value_bytes
from layerserve.server.store.records import EMPTY, StoredRecords, decode_object, from_index, index_objects, plan
from layerserve.server.store.versions import Changes

__all__ = ["CHANNEL", "RedisStore"]

T = TypeVar("T")
log = logging.getLogger("layerserve.store")

CHANNEL = "ls:commits"
GRAPHS = "ls:graphs"

# KEYS: head, graph set, retired set, (version key, history key) per put, history key per removal,
# object key per new object. ARGV: base, revision, keep, commit id, graph, entry key prefix, object
# key prefix, number of puts, of removals, of new objects, then (field, data) per put, removed
# fields, (name, data) per new object, and last the names of the objects it drops.
_COMMIT = """
local head = KEYS[1]
if tonumber(redis.call('HGET', head, 'rev') or '0') ~= tonumber(ARGV[1]) then
  if redis.call('HGET', head, 'commit') == ARGV[4] then return 1 end
  return 0
end
local rev, keep, prefix, oprefix = ARGV[2], tonumber(ARGV[3]), ARGV[6], ARGV[7]
local nput, nrem, nobj = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local a, k = 11, 4
for i = 1, nput do
  local field = ARGV[a]
  redis.call('SET', KEYS[k], ARGV[a + 1])
  redis.call('HSET', head, field, rev)
  redis.call('LPUSH', KEYS[k + 1], rev)
  while redis.call('LLEN', KEYS[k + 1]) > keep do
    redis.call('DEL', prefix .. field .. '@' .. redis.call('RPOP', KEYS[k + 1]))
  end
  a, k = a + 2, k + 2
end
for i = 1, nrem do
  for _, old in ipairs(redis.call('LRANGE', KEYS[k], 0, -1)) do
    redis.call('DEL', prefix .. ARGV[a] .. '@' .. old)
  end
  redis.call('DEL', KEYS[k])
  redis.call('HDEL', head, ARGV[a])
  a, k = a + 1, k + 1
end
for i = 1, nobj do
  redis.call('SET', KEYS[k], ARGV[a + 1])
  redis.call('ZREM', KEYS[3], ARGV[a])
  a, k = a + 2, k + 1
end
for i = a, #ARGV do
  redis.call('ZADD', KEYS[3], rev, ARGV[i])
end
local horizon = tonumber(rev) - keep
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', horizon)
for _, name in ipairs(gone) do
  redis.call('DEL', oprefix .. name)
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', horizon) end
redis.call('HSET', head, 'rev', rev, 'commit', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PUBLISH', 'ls:commits', ARGV[5] .. ' ' .. rev)
return 1
"""


def _keys(graph: str) -> tuple[str, str, str]:
    """The head key, the entry-version prefix and the history prefix of a graph."""
    tag = f"ls:{{{graph}}}"
    return f"{tag}:head", f"{tag}:e:", f"{tag}:h:"


def _object_keys(graph: str) -> tuple[str, str]:
    """The object prefix and the retired set of a graph."""
    tag = f"ls:{{{graph}}}"
    return f"{tag}:o:", f"{tag}:retired"


def _decode_object(name: str, data: bytes) -> Any:
    """A blob as the base64 text a config holds, a record object as its records."""
    return base64.b64encode(data).decode() if name.endswith(".bin") else decode_object(data)


class _Commit:
    """What one commit writes beside the entries: record indexes, new objects, dropped objects."""

    def __init__(self) -> None:
        self.records: dict[str, StoredRecords] = {}
        self.objects: list[tuple[str, bytes]] = []
        self.dropped: list[str] = []


class RedisStore(StateStore):
    shared = True

    def __init__(self, url: str, keep_versions: int = 4, read_attempts: int = 8) -> None:
        super().__init__()
        self.keep_versions = max(1, keep_versions)
        self.read_attempts = read_attempts
        self.client = redis.Redis.from_url(
            url, retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError], health_check_interval=30)
        self._commit_script = self.client.register_script(_COMMIT)
        self._url = url
        self._aclient: redis.asyncio.Redis | None = None  # made in the event loop that uses it
        # graph -> entry -> (its revision, its decoded value): immutable, shared by every copy
        self._entries: dict[str, dict[str, tuple[int, Any]]] = {}
        self._objects: dict[str, dict[str, Any]] = {}  # graph -> object name -> decoded (immutable)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    # ---- reading -------------------------------------------------------------------------
    def load(self) -> dict[str, Graph]:
        """Every graph; one whose entries cannot be read is reported (``damaged``, by key) and
        left as it is in Redis, and the others are served."""
        graphs, self.damaged = {}, {}
        for name in self.graph_names(()):
            try:
                graph = self.refresh(name, None)
            except StoreUnavailable as exc:
                if name not in self.damaged:
                    raise
                log.error("graph %s is not served: %s", name, exc)
                continue
            if graph is not None:
                graphs[name] = graph
        return graphs

    def graph_names(self, known: Iterable[str]) -> list[str]:
        names = self._call(lambda: self.client.smembers(GRAPHS))
        return sorted({*known, *(n.decode() for n in names)})

    def head_revision(self, name: str) -> int:
        """The one round trip a request pays to learn whether its copy is current."""
        raw = self._call(lambda: self.client.hget(_keys(name)[0], "rev"))
        return int(raw or 0)

    async def head_revision_async(self, name: str) -> int | None:
        if self._aclient is None:
            self._aclient = redis.asyncio.Redis.from_url(self._url, retry=Retry(ExponentialBackoff(cap=0.5), 3),
                                                         retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        try:
            return int(await self._aclient.hget(_keys(name)[0], "rev") or 0)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the Redis store is unavailable: {exc}") from exc

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()

    def refresh(self, name: str, cached: Graph | None) -> Graph | None:
        revision = self.head_revision(name)
        if cached is not None and cached.revision == revision:
            return cached
        return None if revision == 0 else self._read(name)

    def _read(self, name: str) -> Graph:
        """The graph at its head; a graph that cannot be read is marked ``damaged`` (503
        ``graph_damaged``, naming the key) until a restart after its repair."""
        try:
            return self._read_head(name)
        except _Damaged as exc:
            self.damaged[name] = str(exc)[:600]
            log.error("graph %s is not served: %s", name, exc)
            raise StoreUnavailable(f"graph {name!r} is not served: it could not be loaded ({self.damaged[name]}); "
                                   "repair or remove its keys and restart", code="graph_damaged") from None

    def _read_head(self, name: str) -> Graph:
        missing_at: int | None = None
        for _ in range(self.read_attempts):
            head = {k.decode(): int(v) for k, v in self._call(lambda: self.client.hgetall(_keys(name)[0])).items()
                    if k != b"commit"}
            revision = head.pop("rev", 0)
            table, missing = self._fetch(name, head)
            if not missing:
                objects, missing = self._fetch_objects(name, table)
            if missing:
                if missing_at == revision:  # the head stayed: not a race with a writer, the key is gone
                    raise _Damaged(missing, "missing, while the graph's head names it")
                missing_at = revision  # a writer may have replaced a version K times while we read
                continue
            graph, blobs = _assembled(name, revision, head, table, objects, _keys(name)[1])
            with self._lock:
                self._entries[name], self._objects[name] = table, objects
            self.stamper.remember(graph, blobs)
            return graph
        raise StoreUnavailable(f"graph {name!r} changed too often to be read; retry", code="store_busy")

    def _fetch(self, name: str, head: dict[str, int]) -> tuple[dict[str, tuple[int, Any]], str | None]:
        """Every entry the head names (cached ones as they are, the others from Redis), and the
        key of one that is not there (None when all are)."""
        with self._lock:
            known = dict(self._entries.get(name, {}))
        table = {f: known[f] for f, rev in head.items() if f in known and known[f][0] == rev}
        wanted = [f for f in head if f not in table]
        if wanted:
            keys = [f"{_keys(name)[1]}{f}@{head[f]}" for f in wanted]
            data = self._call(lambda: self.client.mget(keys))
            for key, field, d in zip(keys, wanted, data, strict=True):
                if d is None:
                    return table, key
                table[field] = (head[field], _decoded(key, partial(decode_entry, field, d)))
        return table, None

    def _fetch_objects(self, name: str, table: dict[str, tuple[int, Any]]) -> tuple[dict[str, Any], str | None]:
        """Every object the entries refer to (name -> decoded), and the key of one that is gone."""
        wanted: set[str] = set()
        prefix = _keys(name)[1]
        for f, (rev, value) in table.items():
            key = f"{prefix}{f}@{rev}"
            if f.startswith("R:"):
                wanted.update(_decoded(key, partial(_record_objects, value)))
            elif (f == STRUCTURE or f.startswith("L:")):
                wanted.update(map(blob_name, _decoded(key, partial(_refs, f, value))))
        return self._objects_found(name, wanted)

    def _objects_named(self, name: str, wanted: Iterable[str]) -> dict[str, Any] | None:
        """The objects, or None when one is gone or unreadable (the copy is then read again,
        which reports a damaged graph)."""
        try:
            objects, missing = self._objects_found(name, wanted)
        except _Damaged:
            return None
        return None if missing else objects

    def _objects_found(self, name: str, wanted: Iterable[str]) -> tuple[dict[str, Any], str | None]:
        with self._lock:
            known = self._objects.get(name, {})
            objects = {n: known[n] for n in wanted if n in known}
        missing = [n for n in wanted if n not in objects]
        if missing:
            keys = [_object_keys(name)[0] + n for n in missing]
            data = self._call(lambda: self.client.mget(keys))
            for key, n, d in zip(keys, missing, data, strict=True):
                if d is None:
                    return objects, key
                objects[n] = _decoded(key, partial(_decode_object, n, d))
        return objects, None

    # ---- writing -------------------------------------------------------------------------
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        try:
            extra = self._plan(graph, {i for i in layers if i in graph.layers})
            changes = self.stamp(graph, variables, extra.records)
        except StaleGraph:
            graph.revision = -1  # never current again: the next refresh reads the store's copy
            raise
        if changes.empty:
            return
        extra.objects += [(blob_name(d), base64.b64decode(text)) for d, text in changes.blobs.items()]
        extra.dropped += [blob_name(d) for d in changes.dropped_blobs]
        try:
            committed = self._call(lambda: self._commit_script(*self._script_args(graph, changes, extra)))
        except StoreUnavailable:
            # The reply was lost, not necessarily the commit: this copy (whose values the caller
            # rolls back) must not pass for the stamped revision, which the store may now hold.
            graph.revision = -1
            self.stamper.forget(graph.name)
            raise
        if not committed:
            graph.revision = -1
            self.stamper.forget(graph.name)
            raise StaleGraph(f"graph {graph.name!r} was committed by another replica")
        self._remember_commit(graph, changes, extra)

    def _plan(self, graph: Graph, layers: set[str]) -> _Commit:
        """How each layer's records are stored after this commit, and which record objects it
        drops (read before the stamp moves the versions)."""
        extra = _Commit()
        for field in [f for f in graph.versions if f.startswith("R:") and f[2:] not in graph.layers]:
            extra.dropped += self._stored(graph, field).names()  # the layer was deleted
        for layer_id in sorted(layers):
            prev = self._stored(graph, f"R:{layer_id}")
            layer = graph.layers[layer_id]
            stored, written = plan(prev, layer.losses, layer.updates, lambda: f"{uuid.uuid4().hex}.json")
            extra.records[layer_id] = stored
            extra.objects += written
            kept = set(stored.names())
            extra.dropped += [n for n in prev.names() if n not in kept]
        return extra

    def _stored(self, graph: Graph, field: str) -> StoredRecords:
        """A layer's records at the version the graph copy holds: from the cache, else from Redis
        (that version exists as long as it is the head's; if not, the copy is stale)."""
        rev = graph.versions.get(field)
        if rev is None:
            return EMPTY
        with self._lock:
            cached = self._entries.get(graph.name, {}).get(field)
        if cached is not None and cached[0] == rev:
            return cached[1]  # type: ignore[no-any-return]
        data = self._call(lambda: self.client.get(f"{_keys(graph.name)[1]}{field}@{rev}"))
        try:
            index = None if data is None else json.loads(data)
        except ValueError:
            index = None  # unreadable: read the graph again, which reports it as damaged
        objects = None if index is None else self._objects_named(graph.name, index_objects(index))
        if index is None or objects is None:
            raise StaleGraph(f"graph {graph.name!r} moved on since this copy was read")
        return from_index(index, objects)

    def _script_args(self, graph: Graph, changes: Changes, extra: _Commit) -> tuple[list[str], list[Any]]:
        head, prefix, history = _keys(graph.name)
        oprefix, retired = _object_keys(graph.name)
        puts = self._puts(graph, changes, extra)
        keys = [head, GRAPHS, retired]
        for field, _ in puts:
            keys += [f"{prefix}{field}@{changes.revision}", f"{history}{field}"]
        keys += [f"{history}{field}" for field in changes.removed]
        keys += [oprefix + n for n, _ in extra.objects]
        args: list[Any] = [changes.base, changes.revision, self.keep_versions, uuid.uuid4().hex, graph.name, prefix,
                           oprefix, len(puts), len(changes.removed), len(extra.objects)]
        for pair in puts + extra.objects:
            args += pair
        return keys, args + changes.removed + extra.dropped

    @staticmethod
    def _puts(graph: Graph, changes: Changes, extra: _Commit) -> list[tuple[str, str | bytes]]:
        puts: list[tuple[str, str | bytes]] = list(changes.texts.items())
        puts += [(f"V:{n}", value_bytes(graph.values[n])) for n in changes.values]
        puts += [(f"R:{i}", extra.records[i].index_text) for i in changes.records]
        return puts

    def _remember_commit(self, graph: Graph, changes: Changes, extra: _Commit) -> None:
        """Our own commit's entries and objects join the caches, so that our next read fetches none."""
        rev = changes.revision
        new = {f: (rev, json.loads(text)) for f, text in changes.texts.items()}
        new.update({f"V:{n}": (rev, graph.values[n]) for n in changes.values})
        new.update({f"R:{i}": (rev, extra.records[i]) for i in changes.records})
        objects: dict[str, Any] = {n: r for stored in extra.records.values() for n, r in stored.objects}
        objects.update({blob_name(d): text for d, text in changes.blobs.items()})
        with self._lock:
            table = self._entries.setdefault(graph.name, {})
            table.update(new)
            for field in changes.removed:
                table.pop(field, None)
            cache = self._objects.setdefault(graph.name, {})
            cache.update(objects)
            for n in extra.dropped:
                cache.pop(n, None)

    # ---- warming -------------------------------------------------------------------------
    def watch(self, on_commit: Callable[[str, int], None]) -> None:
        self._watcher = threading.Thread(target=self._listen, args=(on_commit,), name="store-watch", daemon=True)
        self._watcher.start()

    def _listen(self, on_commit: Callable[[str, int], None]) -> None:
        """Relay commit announcements; lost ones only mean a later refresh does the work."""
        while not self._closed.is_set():
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(CHANNEL)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        name, _, revision = message["data"].decode().rpartition(" ")
                        on_commit(name, int(revision))
                pubsub.close()
            except Exception:  # a hint channel: never let it take the replica down
                self._closed.wait(1.0)

    def healthy(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    # ---- plumbing ------------------------------------------------------------------------
    @staticmethod
    def _call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the Redis store is unavailable: {exc}") from exc

    def close(self) -> None:
        self._closed.set()  # the watcher, a daemon, notices within a second
        self.client.close()


class _Damaged(Exception):
    """An entry or object of a graph that cannot be read, named by key."""

    def __init__(self, key: str, reason: object) -> None:
        super().__init__(f"{key}: {reason}")


def _decoded(key: str, decode: Callable[[], T]) -> T:
    """``decode()``; whatever it raises (bad JSON, not an array, a wrong structure) names ``key``."""
    try:
        return decode()
    except Exception as exc:
        raise _Damaged(key, f"{type(exc).__name__}: {str(exc)[:300]}") from None


def _assembled(name: str, revision: int, head: dict[str, int], table: dict[str, tuple[int, Any]],
               objects: dict[str, Any], prefix: str) -> tuple[Graph, dict[str, str]]:
    """The graph from its decoded entries, each value checked against its variable's shape and dtype."""
    for f, (rev, value) in table.items():
        if f.startswith("R:") and not isinstance(value, StoredRecords):
            table[f] = (rev, _decoded(f"{prefix}{f}@{rev}", partial(from_index, value, objects)))
    blobs = {d: objects[blob_name(d)] for f, (_, v) in table.items() if (f == STRUCTURE or f.startswith("L:"))
             for d in _refs(f, v)}
    where = f"{prefix}{STRUCTURE}@{head.get(STRUCTURE, 0)} (or a layer definition it lists)"
    graph = _decoded(where, partial(assemble, name, revision, head, {f: value for f, (_, value) in table.items()},
                                           blobs))
    for var in graph.variables.values():
        value = graph.values.get(var.name)
        if value is not None and (tuple(value.shape) != tuple(var.shape) or value.dtype.name != var.dtype):
            field = f"V:{var.name}"
            raise _Damaged(f"{prefix}{field}@{head.get(field)}",
                           f"holds a {value.dtype.name} array of shape {list(value.shape)}; variable {var.name!r} "
                           f"is {var.dtype} of shape {list(var.shape)}")
    return graph, blobs


def _record_objects(value: Any) -> list[str]:
    """The objects a layer's records refer to: from its decoded records, or its stored index."""
    return list(value.names() if isinstance(value, StoredRecords) else index_objects(value))


def _refs(field: str, value: Any) -> list[str]:
    """The blobs an entry refers to: a layer's models, the structure's programs."""
    return program_refs(value) if field == STRUCTURE else blob_refs(value)
