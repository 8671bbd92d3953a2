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
from trace_insights.truth.models import Assessment as AssessmentRow
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


def test_overrides_and_expectations_count_exactly_once(truth_engine, store):
    """MLflow's override: the replaced feedback stops counting (and is kept, not valid);
    deleting the override counts it again. An expectation counts nowhere. Both before and
    after the trace finalizes, through a flaky store, a replay and a rebuild."""
    experiment = f"o{uuid.uuid4().hex[:8]}"
    spans = sdk_spans(40, seed=37)
    roots = [s for s in spans if s.parent is None]
    early, late, undone = roots[:10], roots[10:20], roots[20:25]

    def judged(root, value, suffix: str, **changes):
        trace_id = root.context.trace_id
        base = _assessment(trace_id, value, experiment, f"a{suffix}-{trace_id:032x}")
        return dataclasses.replace(base, **changes)

    def override(root):
        first = judged(root, False, "1")
        return first, judged(root, True, "2", overrides=first.assessment_id)

    bus = LocalBus(partitions=3)
    for root in early:  # before the trace is complete: deferred to its finalization
        for a in override(root):
            publish_assessment(bus, a)
    publish_to_bus(bus, spans, experiment)
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=4), POLICY, 600_000)
    _drain(aggregator)
    for root in late + undone:
        for a in override(root):
            publish_assessment(bus, a)
    for root in undone:  # the override deleted: the first feedback counts again
        second = override(root)[1]
        publish_assessment(bus, dataclasses.replace(second, value=None, deleted=True))
    publish_assessment(
        bus, judged(roots[0], ["a", {"b": 1}], "3", name="expected", kind="expectation")
    )
    _drain(aggregator)
    bus.restart()
    _drain(aggregator)

    day = min(s.start_time for s in spans) // 1_000_000 // 86_400_000 * 86_400_000
    values = store.read_hash(keys.assessment_values(experiment, DAY, day, "correct"))
    assert {k: v for k, v in values.items() if v} == {value_key(True): 20, value_key(False): 5}
    assert not any(
        store.read_hash(keys.assessment_values(experiment, DAY, day, "expected")).values()
    )
    occurrences = store.read_hash(keys.occurrences(experiment, DAY, day))
    assert (occurrences["assessment.correct=true"], occurrences["assessment.correct=false"]) == (
        20,
        5,
    )
    assert not any(k.startswith("assessment.expected") for k, v in occurrences.items() if v)
    with truth_engine.connect() as connection:
        rows = {
            r.assessment_id: r
            for r in connection.execute(
                sa.select(AssessmentRow).where(AssessmentRow.experiment_id == experiment)
            )
        }
    assert sum(not r.valid for r in rows.values()) == 20  # the replaced ones, kept
    assert sum(r.kind == "expectation" for r in rows.values()) == 1
    assert all(
        r.valid
        for r in rows.values()
        if r.trace_id in {f"{u.context.trace_id:032x}" for u in undone}
    )

    live = dict(values)
    rebuild(truth_engine, store, POLICY, experiment_ids=[experiment])
    assert store.read_hash(keys.assessment_values(experiment, DAY, day, "correct")) == live
    assert store.read_hash(keys.occurrences(experiment, DAY, day)) == occurrences
