"""Each atomic update touches one Redis Cluster hash slot: its experiment's."""

from redis.crc import key_slot

from tests.unit.test_domain import _span
from trace_insights.aggregator.deltas import Policy, accumulate
from trace_insights.aggregator.truth.history import History
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.records import summarize
from trace_insights.stores.memory import MemoryStore


def test_every_key_of_an_update_shares_the_fence_slot():
    spans = [
        _span("root", kind="AGENT", end=1500),
        _span("a", "root", tool="search", status="ERROR", start=10, end=20),
        _span("c", "root", kind="LLM", model="gpt", start=50, end=1600),
    ]
    history = History(summarize("t", "1", spans[:2]), 7, spans[:2], late=[(9, spans[2])])
    policy = Policy(ttl_ms={r: 86_400_000 for r in Resolution})
    [update] = accumulate([(history.at(7), history.at(9))], 3, MemoryStore(), policy)
    assert update.dirty, "the late span moved the latency: the digest is to be recomputed"
    touched = {key for key, _ in update.counters} | {key for key, _ in update.blobs}
    touched |= set(update.distinct) | set(update.expire_at_ms)
    touched |= {key for key, _ in update.maximums}  # the watermark in the meta hash
    assert len(touched) > 20
    slot = key_slot(keys.fence("1").encode())
    assert {key_slot(key.encode()) for key in touched} == {slot}
    assert key_slot(keys.tag_registry("1", "env").encode()) == slot
