"""The whole aggregation path — bus, truth, store — against every truth and store pairing:
the aggregates equal a ground truth computed from what was sent, through crashes and replays."""

import uuid

import numpy as np
import pytest

from tests.support import assert_quantiles_close, ground_truth, publish_to_bus, sdk_spans
from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.bus import LocalBus
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields

POLICY = Policy(ttl_ms={r: 10 * 365 * 86_400_000 for r in Resolution})
DAY = Resolution.DAY


class FlakyStore:
    """Fails every ``every``-th live apply before it reaches the store, as a crash would
    (the rebuilds that make a new experiment's aggregates whole are left alone)."""

    def __init__(self, inner, every: int) -> None:
        self._inner = inner
        self._every = every
        self._calls = 0

    def apply(self, update):
        from redis.exceptions import ConnectionError as RedisConnectionError

        self._calls += update.token is None
        if update.token is None and self._calls % self._every == 0:
            raise RedisConnectionError("injected failure")
        return self._inner.apply(update)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _drain(aggregator: Aggregator, rounds: int = 200) -> None:
    for _ in range(rounds):
        if aggregator.run_once(poll_timeout_ms=10) == 0 and not aggregator.source._pending():
            return


def _check(store, experiment, truth):
    for day, expected in truth.items():
        bucket = store.read_hash(keys.bucket(experiment, DAY, day))
        assert bucket[fields.TRACES] == expected["traces"]
        for status, count in expected["status"].items():
            assert bucket[fields.status(status)] == count
        for kind, count in expected["types"].items():
            assert bucket[fields.span_type(kind)] == count
        for tool, count in expected["tool_calls"].items():
            assert bucket[fields.tool(tool, "calls")] == count
            assert bucket.get(fields.tool(tool, "errors"), 0) == expected["tool_errors"][tool]
            assert bucket[fields.tool(tool, "traces")] == expected["tool_traces"][tool]
        assert bucket.get(fields.TOOL_TRACES, 0) == expected["traces_with_tools"]
        latencies = np.array(expected["latencies"], dtype=float)
        assert bucket[fields.LATENCY_SUM] == pytest.approx(latencies.sum())
        digest = sketch.merged(
            store.read_blob_hashes([keys.digests(experiment, DAY, day, "latency")])[0]
        )
        assert digest.n_values == len(latencies)
        assert (digest.min(), digest.max()) == (latencies.min(), latencies.max())
        assert_quantiles_close(digest, latencies)
        occurrences = store.read_hash(keys.occurrences(experiment, DAY, day))
        assert occurrences["status=ERROR"] == expected["status"]["ERROR"]
        partners = store.read_hash(keys.partners(experiment, DAY, day, "status=ERROR"))
        for tool, count in expected["error_and_tool_error"].items():
            assert partners[f"tools.{tool}=error"] == count


def _bucket_hashes(store, experiment, truth):
    return [store.read_hash(keys.bucket(experiment, r, day)) for day in truth for r in (DAY,)]


def test_aggregates_equal_the_ground_truth_through_failures_and_replays(truth_engine, store):
    experiment = f"e{uuid.uuid4().hex[:8]}"
    spans = sdk_spans(300, seed=21)
    truth = ground_truth(spans)
    bus = LocalBus(partitions=3)
    publish_to_bus(bus, spans[: len(spans) // 2], experiment)
    flaky = FlakyStore(store, every=3)
    aggregator = Aggregator(bus, truth_engine, flaky, POLICY, idle_timeout_ms=600_000)
    _drain(aggregator)
    bus.restart()  # a crash: everything not committed is read again
    publish_to_bus(bus, spans[len(spans) // 2 :], experiment)
    publish_to_bus(bus, spans[:200], experiment)  # duplicate delivery at later offsets
    _drain(aggregator)
    bus.restart()
    _drain(aggregator)
    _check(store, experiment, truth)
    first_starts = {}
    for span in spans:
        trace = span.context.trace_id
        first_starts[trace] = min(first_starts.get(trace, span.start_time), span.start_time)
    watermark = store.read_hash(keys.meta(experiment))[fields.WATERMARK]
    assert watermark == max(first_starts.values()) // 1_000_000, "the latest trace start applied"

    live = _bucket_hashes(store, experiment, truth)
    replayed = rebuild(truth_engine, store, POLICY, experiment_ids=[experiment])
    assert replayed == 300
    assert _bucket_hashes(store, experiment, truth) == live
    _check(store, experiment, truth)
