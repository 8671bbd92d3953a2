"""Trace-level aggregates are a function of all of a trace's spans, whatever order they came in
(issue 14): a trace whose root came first and children later, or whose children were finalized
by the idle timeout before its root came, ends with exactly the aggregates of the same trace
delivered whole — through failures and replays —, and the store (SQL dimension counts) agrees
with the stream on every dimension."""

import time
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from tests.contract.test_assessments_contract import _assessment
from tests.contract.test_pipeline_contract import POLICY, FlakyStore, _drain
from tests.support import publish_assessment, publish_to_bus, sdk_spans
from trace_insights.aggregator.deltas import LATENCY
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.bus import LocalBus
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution, bucket_start
from trace_insights.core.keys import fields
from trace_insights.truth.dimension_counts import ALL, dimension_counts
from trace_insights.truth.models import Trace

IDLE_MS = 60_000
TRACES = 120


def _renamed(spans: list, salt: int) -> list:
    """The same spans as another set of traces (their trace ids changed)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    def moved(context):  # type: ignore[no-untyped-def]
        if context is None:
            return None
        return SpanContext(
            context.trace_id ^ salt,
            context.span_id,
            context.is_remote,
            context.trace_flags,
            context.trace_state,
        )

    return [
        ReadableSpan(
            name=s.name,
            context=moved(s.context),
            parent=moved(s.parent),
            resource=s.resource,
            attributes=s.attributes,
            events=s.events,
            links=s.links,
            kind=s.kind,
            status=s.status,
            start_time=s.start_time,
            end_time=s.end_time,
            instrumentation_scope=s.instrumentation_scope,
        )
        for s in spans
    ]


def _deliver(bus, aggregator, spans, experiment, order, assessed):
    """Deliver ``spans`` in an order; assess some traces while they are still incomplete."""
    roots = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    first, second = {
        "whole": (spans, []),
        "root first": (roots, children),
        "root after the idle timeout": (children, roots),
    }[order]
    publish_to_bus(bus, first, experiment)
    _drain(aggregator)
    if order == "root after the idle timeout":
        aggregator.tick_silent_partitions(int(time.time() * 1000) + IDLE_MS + 1)
        _drain(aggregator)
    for index, root in enumerate(assessed):
        value = index % 3 == 0
        publish_assessment(
            bus, _assessment(root.context.trace_id, value, experiment, f"{experiment}-{index}")
        )
    _drain(aggregator)
    publish_to_bus(bus, second, experiment)
    _drain(aggregator)
    bus.restart()  # replay whatever was not committed
    _drain(aggregator)
    for _ in range(5):  # the refresher's turns (an injected failure leaves the marks)
        aggregator.refresh_digests()
    assert aggregator.store.dirty(experiment) == set()


def _aggregates(store, experiment, starts):
    """Everything the experiment's buckets hold (late span counts aside: they say the order)."""
    out = {}
    for resolution, start in starts:
        bucket = store.read_hash(keys.bucket(experiment, resolution, start))
        bucket.pop(fields.LATE_SPANS, None)
        out[("bucket", resolution, start)] = {k: round(v, 6) for k, v in bucket.items()}
        occurrences = store.read_hash(keys.occurrences(experiment, resolution, start))
        out[("occ", resolution, start)] = occurrences
        if resolution in POLICY.cooccurrence:
            for dim in occurrences:
                key = keys.partners(experiment, resolution, start, dim)
                out[("co", resolution, start, dim)] = store.read_hash(key)
        for name in ("correct",):
            key = keys.assessment_values(experiment, resolution, start, name)
            out[("av", resolution, start)] = store.read_hash(key)
        metrics = [
            LATENCY,
            *(
                f"tool:{n[5:].rsplit(':', 1)[0]}"
                for n in bucket
                if n.startswith("tool:") and n.endswith(":calls")
            ),
        ]
        for metric in metrics:
            copies = store.read_blob_hashes([keys.digests(experiment, resolution, start, metric)])
            digest = sketch.merged(copies[0])
            out[("td", resolution, start, metric)] = (
                None
                if digest.is_empty()
                else (
                    digest.n_values,
                    digest.min(),
                    digest.max(),
                    *(round(digest.quantile(q), 3) for q in (0.5, 0.9, 0.99)),
                )
            )
    return out


def _store_counts(engine, experiment):
    """The SQL dimension counts of the experiment's traces (the filter-language side)."""
    universe = (
        sa.select(
            Trace.trace_id,
            Trace.status,
            Trace.execution_time_ms,
            Trace.cost,
            Trace.span_stats,
            Trace.tags,
            sa.literal(0).label("in_slice"),
        )
        .where(Trace.experiment_id == experiment)
        .cte("universe")
    )
    with engine.connect() as connection:
        rows = connection.execute(dimension_counts(universe, engine.dialect.name))
        return {row[0]: int(row[1]) for row in rows if int(row[1])}


@pytest.mark.parametrize("order", ["root first", "root after the idle timeout"])
def test_any_arrival_order_ends_with_the_aggregates_of_the_whole_trace(truth_engine, store, order):
    original = sdk_spans(TRACES, seed=41)
    starts = set()
    for span in original:
        for resolution in Resolution:
            starts.add((resolution, bucket_start(span.start_time // 1_000_000, resolution)))
    results = {}
    bus = LocalBus(partitions=3)
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=5), POLICY, IDLE_MS)
    for salt, delivery in enumerate(("whole", order)):
        experiment = f"o{uuid.uuid4().hex[:8]}"
        spans = _renamed(original, salt)
        assessed = [s for s in spans if s.parent is None][::4]
        _deliver(bus, aggregator, spans, experiment, delivery, assessed)
        results[delivery] = _aggregates(store, experiment, sorted(starts))
        day = {k: v for k, v in results[delivery].items() if k[0] == "bucket" and k[1] == "d"}
        assert sum(b[fields.TRACES] for b in day.values()) == TRACES
        occurrences: dict[str, int] = {}
        for (kind, resolution, *_), found in results[delivery].items():
            if kind == "occ" and resolution == Resolution.DAY:
                for dim, n in found.items():
                    occurrences[dim] = occurrences.get(dim, 0) + int(n)
        stored = _store_counts(truth_engine, experiment)
        assert stored.pop(ALL) == TRACES
        assert occurrences == stored, f"{delivery}: the stream and the store disagree"
        rebuild(truth_engine, store, POLICY, experiment_ids=[experiment])
        assert _aggregates(store, experiment, sorted(starts)) == results[delivery], "rebuilt"
    whole, moved = results["whole"], results[order]
    assert moved == whole
    statuses = {k: v for k, v in whole.items() if k[0] == "bucket"}
    assert not any(fields.status("IN_PROGRESS") in b for b in statuses.values())
    latencies = [v for k, v in whole.items() if k[0] == "td" and k[3] == LATENCY and v]
    assert sum(n for n, *_ in latencies) == 3 * TRACES, "each trace once per resolution"
    assert all(np.isfinite(top) for _, _, top, *_ in latencies)
