"""Trace tags set and removed after the spans (MLflow's set_trace_tag, delete_trace_tag, the
tags its client sends when a trace ends): before and after the trace finalizes, the tag
counts move exactly once, through a flaky store, duplicate deliveries, a replay and a
rebuild, and the source of truth's tags (what filters read) agree with them."""

import uuid
from collections import Counter

import sqlalchemy as sa

from tests.contract.test_pipeline_contract import POLICY, FlakyStore, _drain
from tests.support import publish_to_bus, sdk_spans
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.bus import LocalBus
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.routing import partition_for
from trace_insights.core.trace_tags import TagEdit, encode
from trace_insights.truth.models import Trace

DAY = Resolution.DAY


def _publish(bus: LocalBus, *edits: TagEdit) -> None:
    partition = partition_for(bytes.fromhex(edits[0].trace_id), bus.partitions)
    bus.append(partition, encode(edits).SerializeToString(), 1)


def test_tag_edits_move_the_tag_counts_exactly_once(truth_engine, store):
    experiment = f"t{uuid.uuid4().hex[:8]}"
    spans = sdk_spans(30, seed=43)
    roots = [s for s in spans if s.parent is None]
    ids = [f"{r.context.trace_id:032x}" for r in roots]
    bus = LocalBus(partitions=3)
    for trace_id in ids[:5]:  # before any span: laid over the spans' tags at finalization
        _publish(bus, TagEdit(trace_id, experiment, "env", "prod"))
    publish_to_bus(bus, spans, experiment)
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=3), POLICY, 600_000)
    _drain(aggregator)
    with truth_engine.connect() as connection:
        spans_tags = dict(
            connection.execute(
                sa.select(Trace.trace_id, Trace.tags).where(Trace.experiment_id == experiment)
            ).all()
        )
    for trace_id in ids[5:15]:  # after the finalization: moves
        _publish(bus, TagEdit(trace_id, experiment, "env", "prod"))
    for trace_id in ids[:3]:
        _publish(bus, TagEdit(trace_id, experiment, "env", None))
    for trace_id in ids[15:20]:  # a tag the spans carry, changed, then one removed
        _publish(
            bus,
            TagEdit(trace_id, experiment, "customer_tier", "vip"),
            TagEdit(trace_id, experiment, "query_type", None),
        )
    _publish(bus, TagEdit(ids[20], experiment, "env", "dev"))
    _publish(bus, TagEdit(ids[20], experiment, "env", "dev"))  # the same edit twice: one tag
    _drain(aggregator)
    bus.restart()  # replay everything not committed
    _drain(aggregator)

    expected: dict[str, dict[str, str]] = {t: dict(spans_tags[t]) for t in ids}
    for trace_id in ids[3:15]:
        expected[trace_id]["env"] = "prod"
    for trace_id in ids[:3]:
        expected[trace_id].pop("env", None)
    for trace_id in ids[15:20]:
        expected[trace_id]["customer_tier"] = "vip"
        expected[trace_id].pop("query_type", None)
    expected[ids[20]]["env"] = "dev"
    with truth_engine.connect() as connection:
        stored = dict(
            connection.execute(
                sa.select(Trace.trace_id, Trace.tags).where(Trace.experiment_id == experiment)
            ).all()
        )
    assert stored == expected

    day = min(s.start_time for s in spans) // 1_000_000 // 86_400_000 * 86_400_000

    def counted(key: str) -> Counter:
        values = store.read_hash(keys.tag_values(experiment, DAY, day, key))
        return Counter({k: int(v) for k, v in values.items() if int(v)})

    for key in ("env", "customer_tier", "query_type"):
        truth = Counter(tags[key] for tags in expected.values() if key in tags)
        assert counted(key) == truth, key
    assert counted("env") == Counter({"prod": 12, "dev": 1})
    live = {key: counted(key) for key in ("env", "customer_tier", "query_type")}
    occurrences = store.read_hash(keys.occurrences(experiment, DAY, day))
    rebuild(truth_engine, store, POLICY, experiment_ids=[experiment])
    assert {key: counted(key) for key in live} == live
    assert store.read_hash(keys.occurrences(experiment, DAY, day)) == occurrences
