"""How a layer's records are stored (``layerserve.server.store.records``): what a commit writes stays small
whatever the record count, and the stored form always reads back as the layer's records."""

from __future__ import annotations

import itertools
import json
import random
from collections import deque

import numpy as np

from layerserve.server.core.layer import ConditionalLoss, PendingUpdate
from layerserve.server.store.codec import loss_to_json, update_to_json
from layerserve.server.store.records import EMPTY, MAX_OBJECTS, TAIL_RECORDS, decode_object, from_index, plan


class _Layer:
    """A layer's record lists under the data plane's operations, stored after each like a commit."""

    def __init__(self, cap: int) -> None:
        self.cap, self.count = cap, 0
        self.losses: deque[ConditionalLoss] = deque()
        self.updates: deque[PendingUpdate] = deque()
        self.state, self.objects = EMPTY, {}  # type: tuple[StoredRecords, dict]
        self.names = (f"o{i}.json" for i in itertools.count())
        self.written = 0  # bytes of objects and indexes written

    def apply(self, with_update: bool) -> None:
        self.count += 1
        ref = f"sha256:{self.count:064x}"
        self.losses.append(ConditionalLoss(ref, np.asarray(np.float32(self.count))))
        if with_update:
            self.updates.append(PendingUpdate(ref, "bn/moving_mean:0", np.full(4, self.count, np.float32)))
        while len(self.losses) > self.cap:
            self.losses.popleft()
        while len(self.updates) > self.cap:
            self.updates.popleft()

    def commit(self) -> None:
        self.state, new = plan(self.state, self.losses, self.updates, lambda: next(self.names))
        for name, data in new:
            self.objects[name] = decode_object(data)
            self.written += len(data)
        self.written += len(self.state.index_text)
        assert len(self.state.objects) <= MAX_OBJECTS and sum(map(len, self.state.tail)) <= TAIL_RECORDS
        live = self.state.live()
        assert all(a is b for a, b in zip(live[0], self.losses, strict=True))
        assert all(a is b for a, b in zip(live[1], self.updates, strict=True))

    def restart(self) -> None:
        """Read the stored form back, as a load does, and go on from it."""
        self.state = from_index(json.loads(self.state.index_text), self.objects)
        losses, updates = self.state.live()
        assert [(c.ref, c.value.item()) for c in losses] == [(c.ref, c.value.item()) for c in self.losses]
        assert [(u.ref, u.value.tolist()) for u in updates] == [(u.ref, u.value.tolist()) for u in self.updates]
        self.losses, self.updates = deque(losses), deque(updates)


def test_any_mix_of_appends_evictions_consumption_and_restarts_reads_back() -> None:
    rng = random.Random(3)
    layer = _Layer(cap=150)
    for step in range(1500):
        roll = rng.random()
        if roll < 0.9:
            for _ in range(rng.choice((1, 1, 2))):
                layer.apply(with_update=rng.random() < 0.5)
        elif roll < 0.96:  # run_updates for some inputs: consumed out of the middle
            layer.updates = deque(u for u in layer.updates if rng.random() < 0.5)
        else:
            layer.updates.clear()
        layer.commit()
        if step % 97 == 0:
            layer.restart()
    layer.restart()


def test_a_recorded_apply_writes_about_the_same_whatever_the_record_count() -> None:
    """At 1000 records held (every apply evicts one), what a commit writes averages well under
    a tenth of what rewriting the 1000 records would."""
    layer = _Layer(cap=1000)
    for _ in range(1000):
        layer.apply(with_update=False)
        layer.commit()
    all_records = len(json.dumps([loss_to_json(c) for c in layer.losses]))
    layer.written = 0
    for _ in range(1000):
        layer.apply(with_update=False)
        layer.commit()
    assert len(layer.losses) == 1000
    assert layer.written / 1000 < all_records / 10, (layer.written / 1000, all_records)
    assert len(layer.state.objects) <= 8  # a binary counter of spills: about log2(1000 / 64) + 1


def test_running_the_newest_inputs_updates_rewrites_no_older_record() -> None:
    """A training apply then ``run_updates`` of that input (the updates leave from the back):
    each commit writes a tail's worth, not the 600 updates still pending."""
    layer = _Layer(cap=1000)
    for _ in range(600):
        layer.apply(with_update=True)
        layer.commit()
    all_records = len(json.dumps([update_to_json(u) for u in layer.updates]))
    layer.written = 0
    for _ in range(300):
        layer.apply(with_update=True)
        layer.commit()
        layer.updates.pop()
        layer.commit()
    assert len(layer.updates) == 600
    assert layer.written / 600 < all_records / 10, (layer.written / 600, all_records)
