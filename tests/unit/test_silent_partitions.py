"""A trace without a root on a partition that falls silent is still finalized: the aggregator
ticks stream time into the partition, and the tick's offset owns the finalization."""

import time

from tests.support import publish_to_bus, sdk_spans
from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.bus import LocalBus
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.stores.memory import MemoryStore
from trace_insights.truth.database import create_engine, migrate


def test_idle_rootless_trace_finalizes_after_a_tick(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'truth.db'}")
    migrate(engine)
    store = MemoryStore()
    bus = LocalBus(partitions=1)
    spans = [s for s in sdk_spans(1, seed=4) if s.parent is not None]  # the root never comes
    publish_to_bus(bus, spans, "silent")
    idle_ms = 60_000
    aggregator = Aggregator(
        bus, engine, store, Policy(ttl_ms={r: 10**12 for r in Resolution}), idle_ms
    )
    assert aggregator.run_once(10) == len(spans)
    last = bus.poll(0) or None
    assert last is None
    now = int(time.time() * 1000)  # the records were appended before now
    assert aggregator.tick_silent_partitions(now + idle_ms // 2) == []
    assert aggregator.tick_silent_partitions(now + idle_ms + 1) == [0]
    aggregator.run_once(10)
    day = spans[0].start_time // 1_000_000 // 86_400_000 * 86_400_000
    bucket = store.read_hash(keys.bucket("silent", Resolution.DAY, day))
    assert bucket[fields.TRACES] == 1
    assert bucket[fields.status("IN_PROGRESS")] == 1
    assert aggregator.tick_silent_partitions(now + 3 * idle_ms) == [], "nothing left open"
