"""Assessments through the aggregation path: counted with their trace when it finalizes, moved
(not added) when overwritten later, exactly once through failures, replays and duplicates."""

import dataclasses
import uuid
from collections import Counter

import sqlalchemy as sa

from tests.contract.test_pipeline_contract import POLICY, FlakyStore, _drain
from tests.support import publish_assessment, publish_to_bus, sdk_spans
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.bus import LocalBus
from trace_insights.core import keys
from trace_insights.core.assessments import Assessment, value_key
from trace_insights.core.buckets import Resolution
from trace_insights.truth.models import Trace

DAY = Resolution.DAY


def _assessment(trace_id: int, value, experiment: str, assessment_id: str | None = None):
    return Assessment(
        assessment_id=assessment_id or f"a-{trace_id:032x}",
        trace_id=f"{trace_id:032x}",
        experiment_id=experiment,
        name="correct",
        value=value,
        source_type="HUMAN",
        source_id="reviewer",
        rationale=None,
        timestamp_ms=1,
    )


def test_assessments_count_once_move_on_overwrite_and_leave_on_delete(truth_engine, store):
    experiment = f"a{uuid.uuid4().hex[:8]}"
    spans = sdk_spans(60, seed=31)
    roots = [s for s in spans if s.parent is None]
    early, late = roots[:20], roots[20:40]
    bus = LocalBus(partitions=3)
    # assessments that arrive before their trace is complete (deferred to its finalization)
    for root in early:
        publish_assessment(bus, _assessment(root.context.trace_id, True, experiment))
    publish_to_bus(bus, spans, experiment)
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=4), POLICY, 600_000)
    _drain(aggregator)
    # assessments of finalized traces, an overwrite of an early one, and a duplicate delivery
    for root in late:
        publish_assessment(bus, _assessment(root.context.trace_id, "no", experiment))
    flipped = early[0]
    publish_assessment(bus, _assessment(flipped.context.trace_id, False, experiment))
    publish_assessment(bus, _assessment(late[0].context.trace_id, "no", experiment))
    deleted = _assessment(late[1].context.trace_id, None, experiment)
    publish_assessment(bus, dataclasses.replace(deleted, deleted=True))
    _drain(aggregator)
    bus.restart()  # replay everything not committed
    _drain(aggregator)

    expected = Counter({value_key(True): 19, value_key(False): 1, value_key("no"): 19})
    errors = {s.context.trace_id for s in roots if s.status.status_code.name == "ERROR"}
    day = min(s.start_time for s in spans) // 1_000_000 // 86_400_000 * 86_400_000
    values = store.read_hash(keys.assessment_values(experiment, DAY, day, "correct"))
    assert Counter({k: v for k, v in values.items() if v}) == expected
    occurrences = store.read_hash(keys.occurrences(experiment, DAY, day))
    assert occurrences["assessment.correct=true"] == 19
    assert occurrences.get("assessment.correct=false") == 1
    assert occurrences["assessment.correct=no"] == 19
    partners = store.read_hash(keys.partners(experiment, DAY, day, "assessment.correct=true"))
    true_traces = {r.context.trace_id for r in early[1:]}
    assert partners.get("status=ERROR", 0) == len(true_traces & errors)
    assert partners["status=OK"] + partners.get("status=ERROR", 0) == 19

    live = store.read_hash(keys.assessment_values(experiment, DAY, day, "correct"))
    rebuild(truth_engine, store, POLICY, experiment_ids=[experiment])
    assert store.read_hash(keys.assessment_values(experiment, DAY, day, "correct")) == live
    assert store.read_hash(keys.occurrences(experiment, DAY, day)) == occurrences

    # the trace rows carry each trace's current values, which filters read
    with truth_engine.connect() as connection:
        current = dict(
            connection.execute(
                sa.select(Trace.trace_id, Trace.current_assessments).where(
                    Trace.experiment_id == experiment
                )
            ).all()
        )
    assert current[f"{flipped.context.trace_id:032x}"] == {"correct": [False]}
    assert current[f"{early[1].context.trace_id:032x}"] == {"correct": [True]}
    assert current[f"{late[0].context.trace_id:032x}"] == {"correct": ["no"]}
    assert current[f"{late[1].context.trace_id:032x}"] == {}  # deleted
    assert current[f"{roots[50].context.trace_id:032x}"] == {}  # never assessed
    assert sum(1 for values in current.values() if values) == 39
