"""The shared store: graphs in Redis, so that several stateless replicas serve the same layers.

Keys of graph ``g`` (one hash slot, through the ``{g}`` tag)::

    ls:{g}:head              hash: "rev" -> the graph's revision, and per entry -> its revision
    ls:{g}:e:<entry>@<rev>   one immutable version of an entry (canonical JSON, or .npy bytes)
    ls:{g}:h:<entry>         the entry's kept revisions, newest first (the last K)
    ls:graphs                the set of graph names

A commit writes the changed entries' new versions and moves the head in one Lua script, which
first compares the head's revision with the one the commit was computed from: a replica that
lost the race gets ``StaleGraph``, reloads and retries. Readers compare one field ("rev") per
request and fetch only the versions they lack; keeping K versions lets a reader that raced a
writer still find every version its head names. A commit announces itself on the pub/sub
channel ``ls:commits`` so that replicas may warm early; correctness never depends on it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from service.core.graph import Graph
from service.errors import StoreUnavailable
from service.store.base import StaleGraph, StateStore
from service.store.entries import assemble, decode_entry, records_entry, value_bytes
from service.store.versions import Changes

__all__ = ["CHANNEL", "RedisStore"]

CHANNEL = "ls:commits"
GRAPHS = "ls:graphs"

# KEYS: head, graph set, then (version key, history key) per put, then a history key per removal.
# ARGV: base, revision, keep, commit id, graph, number of puts, entry key prefix, (field, data)...,
# removed fields...
_COMMIT = """
local head = KEYS[1]
if tonumber(redis.call('HGET', head, 'rev') or '0') ~= tonumber(ARGV[1]) then
  if redis.call('HGET', head, 'commit') == ARGV[4] then return 1 end
  return 0
end
local rev, keep, nput, prefix = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[6]), ARGV[7]
local a, k = 8, 3
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
for i = a, #ARGV do
  for _, old in ipairs(redis.call('LRANGE', KEYS[k], 0, -1)) do
    redis.call('DEL', prefix .. ARGV[i] .. '@' .. old)
  end
  redis.call('DEL', KEYS[k])
  redis.call('HDEL', head, ARGV[i])
  k = k + 1
end
redis.call('HSET', head, 'rev', rev, 'commit', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PUBLISH', 'ls:commits', ARGV[5] .. ' ' .. rev)
return 1
"""


def _keys(graph: str) -> tuple[str, str, str]:
    """The head key, the entry-version prefix and the history prefix of a graph."""
    tag = f"ls:{{{graph}}}"
    return f"{tag}:head", f"{tag}:e:", f"{tag}:h:"


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
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    # ---- reading -------------------------------------------------------------------------
    def load(self) -> dict[str, Graph]:
        graphs = {}
        for name in self.graph_names(()):
            graph = self.refresh(name, None)
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
        for _ in range(self.read_attempts):
            head = {k.decode(): int(v) for k, v in self._call(lambda: self.client.hgetall(_keys(name)[0])).items()
                    if k != b"commit"}
            revision = head.pop("rev", 0)
            table = self._fetch(name, head)
            if table is None:  # a writer replaced a version K times while we read: read again
                continue
            graph = assemble(name, revision, head, {f: value for f, (_, value) in table.items()})
            with self._lock:
                self._entries[name] = table
            self.stamper.remember(graph)
            return graph
        raise StoreUnavailable(f"graph {name!r} changed too often to be read; retry", code="store_busy")

    def _fetch(self, name: str, head: dict[str, int]) -> dict[str, tuple[int, Any]] | None:
        """Every entry the head names: cached ones as they are, the others from Redis."""
        with self._lock:
            known = dict(self._entries.get(name, {}))
        table = {f: known[f] for f, rev in head.items() if f in known and known[f][0] == rev}
        wanted = [f for f in head if f not in table]
        if wanted:
            prefix = _keys(name)[1]
            data = self._call(lambda: self.client.mget([f"{prefix}{f}@{head[f]}" for f in wanted]))
            if any(d is None for d in data):
                return None
            table.update({f: (head[f], decode_entry(f, d)) for f, d in zip(wanted, data)})
        return table

    # ---- writing -------------------------------------------------------------------------
    def commit(self, graph: Graph, variables: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        try:
            changes = self.stamp(graph, variables, layers)
        except StaleGraph:
            graph.revision = -1  # never current again: the next refresh reads the store's copy
            raise
        if changes.empty:
            return
        puts = self._puts(graph, changes)
        head, prefix, history = _keys(graph.name)
        keys = [head, GRAPHS]
        for field, _ in puts:
            keys += [f"{prefix}{field}@{changes.revision}", f"{history}{field}"]
        keys += [f"{history}{field}" for field in changes.removed]
        args: list[Any] = [changes.base, changes.revision, self.keep_versions, uuid.uuid4().hex, graph.name,
                           len(puts), prefix]
        for field, data in puts:
            args += [field, data]
        args += changes.removed
        if not self._call(lambda: self._commit_script(keys=keys, args=args)):
            graph.revision = -1
            self.stamper.forget(graph.name)
            raise StaleGraph(f"graph {graph.name!r} was committed by another replica")
        self._remember_commit(graph, changes)

    @staticmethod
    def _puts(graph: Graph, changes: Changes) -> list[tuple[str, str | bytes]]:
        puts: list[tuple[str, str | bytes]] = list(changes.texts.items())
        puts += [(f"V:{n}", value_bytes(graph.values[n])) for n in changes.values]
        puts += [(f"R:{i}", records_entry(graph.layers[i])) for i in changes.records]
        return puts

    def _remember_commit(self, graph: Graph, changes: Changes) -> None:
        """Our own commit's entries join the cache, so that our next read fetches none of them."""
        rev = changes.revision
        new = {f: (rev, json.loads(text)) for f, text in changes.texts.items()}
        new.update({f"V:{n}": (rev, graph.values[n]) for n in changes.values})
        for i in changes.records:
            layer = graph.layers[i]
            new[f"R:{i}"] = (rev, (tuple(layer.losses), tuple(layer.updates)))
        with self._lock:
            table = self._entries.setdefault(graph.name, {})
            table.update(new)
            for field in changes.removed:
                table.pop(field, None)

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
