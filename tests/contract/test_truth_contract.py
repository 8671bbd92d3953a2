"""The source of truth's contract, run against PostgreSQL and SQLite alike."""

import sqlalchemy as sa

from trace_insights.aggregator.truth.writer import Delivery, owed, write_batch
from trace_insights.core.records import SpanRecord
from trace_insights.truth.models import Span, Trace

IDLE_MS = 60_000


def _span(trace: str, span: str, parent: str | None = None, **kwargs) -> SpanRecord:
    values = dict(
        trace_id=trace.ljust(32, "0"),
        span_id=span.ljust(16, "0"),
        parent_span_id=parent.ljust(16, "0") if parent else None,
        experiment_id="1",
        name=span,
        span_type="TOOL" if parent else "AGENT",
        status="OK",
        status_message="",
        start_time_ns=1_000_000_000,
        end_time_ns=3_000_000_000,
        tool_name="search" if parent else None,
        model=None,
        input_tokens=None,
        output_tokens=None,
        attributes={"k": "v", "n": 1},
        trace_tags={"env": "prod"},
    )
    values.update(kwargs)
    return SpanRecord(**values)


def _write(engine, partition, deliveries, end):
    clock = max(delivery.timestamp_ms for delivery in deliveries)
    with engine.begin() as connection:
        write_batch(connection, partition, deliveries, [], [], end, clock, IDLE_MS)


def _owed(engine, partition, after, end):
    with engine.connect() as connection:
        return owed(connection, partition, after, end)


def _finalized(items):
    """(state at finalization, final offset) of the traces finalized in the range."""
    return [
        (h.at(h.final_offset), h.final_offset)
        for h in items.histories
        if items.after < h.final_offset <= items.end
    ]


def _late(items):
    return [
        (span, offset)
        for h in items.histories
        for offset, span in h.late
        if items.after < offset <= items.end
    ]


def _count(engine, model):
    with engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_trace_is_finalized_by_its_root_once(truth_engine):
    child = _span("a", "c1", parent="r")
    root = _span("a", "r", status="ERROR", end_time_ns=4_000_000_000)
    _write(truth_engine, 0, [Delivery(5, 1000, child)], 5)
    assert _finalized(_owed(truth_engine, 0, 4, 5)) == []
    _write(truth_engine, 0, [Delivery(6, 1001, root)], 6)
    [(state, offset)] = _finalized(_owed(truth_engine, 0, 5, 6))
    summary, spans = state.summary, state.spans
    assert offset == 6
    assert (summary.status, summary.execution_time_ms, summary.span_count) == ("ERROR", 3000, 2)
    assert summary.tags == {"env": "prod"}
    assert sorted(s.span_id[:2] for s in spans) == ["c1", "r0"]


def test_replays_and_duplicates_change_nothing(truth_engine):
    batch = [
        Delivery(10, 1000, _span("b", "c1", parent="r")),
        Delivery(10, 1000, _span("b", "r")),
        Delivery(11, 1000, _span("b", "r")),  # the same span delivered twice in one batch
    ]
    _write(truth_engine, 2, batch, 11)
    first = _owed(truth_engine, 2, 9, 11)
    _write(truth_engine, 2, batch, 11)  # a replay after a crash
    assert _owed(truth_engine, 2, 9, 11) == first
    _write(truth_engine, 2, [Delivery(40, 2000, _span("b", "c1", parent="r"))], 40)  # a retry
    assert _owed(truth_engine, 2, 39, 40).histories == [], "a retried delivery changes nothing"
    assert _count(truth_engine, Span) == 2
    assert _count(truth_engine, Trace) == 1
    with truth_engine.connect() as connection:
        offsets = set(connection.scalars(sa.select(Span.src_offset)))
    assert offsets == {10}


def test_spans_after_finalization_are_late_and_move_the_trace(truth_engine):
    _write(truth_engine, 1, [Delivery(3, 1000, _span("c", "r"))], 3)
    late = _span("c", "c9", parent="r", end_time_ns=5_000_000_000)
    _write(truth_engine, 1, [Delivery(4, 1000, late)], 4)
    items = _owed(truth_engine, 1, 3, 4)
    assert _finalized(items) == []
    [(span, offset)] = _late(items)
    assert (span.span_id, offset) == (late.span_id, 4)
    [history] = items.histories
    before, after = history.at(3), history.at(4)
    assert before is not None and after is not None
    assert [s.span_id for s in before.spans] == [_span("c", "r").span_id], "as finalized"
    assert (before.summary.execution_time_ms, before.late) == (2000, 0)
    assert (after.summary.execution_time_ms, after.summary.span_count, after.late) == (4000, 2, 1)
    assert after.summary.tags == {"env": "prod"}
    assert history.at(2) is None, "not finalized yet"
    with truth_engine.connect() as connection:
        row = connection.execute(sa.select(Trace)).one()
    assert (row.execution_time_ms, row.span_count) == (4000, 2), "the truth's row is revised"


def test_a_late_root_moves_an_idle_trace_to_its_status(truth_engine):
    _write(truth_engine, 0, [Delivery(1, 1_000, _span("h", "c1", parent="r"))], 1)
    _write(truth_engine, 0, [Delivery(2, 1_000 + IDLE_MS + 1, _span("i", "r"))], 2)
    root = _span("h", "r", status="ERROR", start_time_ns=500_000_000, trace_tags={"k": "v"})
    _write(truth_engine, 0, [Delivery(3, 1_000 + IDLE_MS + 2, root)], 3)
    [history] = [h for h in _owed(truth_engine, 0, 2, 3).histories]
    idle, rooted = history.at(2), history.at(3)
    assert idle is not None and rooted is not None
    assert (idle.summary.status, idle.summary.root_name) == ("IN_PROGRESS", None)
    assert (rooted.summary.status, rooted.summary.root_name) == ("ERROR", "r")
    assert (rooted.summary.timestamp_ms, rooted.summary.execution_time_ms) == (500, 2500)
    assert rooted.summary.tags == {"k": "v", "env": "prod"}, "the root's tags first"
    with truth_engine.connect() as connection:
        row = connection.execute(sa.select(Trace).where(Trace.trace_id == root.trace_id)).one()
    assert (row.status, row.timestamp_ms, row.tags) == ("ERROR", 500, {"k": "v", "env": "prod"})


def _stats(engine) -> dict:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(Trace.trace_id, Trace.span_stats)).all())


def test_span_stats_count_every_stored_span_late_ones_once(truth_engine):
    root, tool = _span("s", "r"), _span("s", "c1", parent="r", status="ERROR")
    _write(truth_engine, 3, [Delivery(1, 1000, tool), Delivery(1, 1000, root)], 1)
    trace_id = root.trace_id
    assert _stats(truth_engine)[trace_id] == {
        "type:AGENT": 1,
        "type:TOOL": 1,
        "tool:search": 1,
        "tool_error:search": 1,
        "error": 1,
    }
    late = _span("s", "c2", parent="r", span_type="LLM", tool_name=None, model="gpt-4")
    _write(truth_engine, 3, [Delivery(2, 1000, late), Delivery(3, 1000, tool)], 3)
    _write(truth_engine, 3, [Delivery(4, 1000, late)], 4)  # delivered again
    assert _stats(truth_engine)[trace_id] == {
        "type:AGENT": 1,
        "type:TOOL": 1,
        "tool:search": 1,
        "tool_error:search": 1,
        "error": 1,
        "type:LLM": 1,
        "model:gpt-4": 1,
    }


def test_traces_without_a_root_finalize_after_the_idle_timeout_in_stream_time(truth_engine):
    _write(truth_engine, 0, [Delivery(1, 1_000, _span("d", "c1", parent="gone"))], 1)
    _write(truth_engine, 0, [Delivery(2, 1_000 + IDLE_MS - 1, _span("e", "r"))], 2)
    finalized = _finalized(_owed(truth_engine, 0, 1, 2))
    assert [state.summary.trace_id[:1] for state, _ in finalized] == ["e"]
    _write(truth_engine, 0, [Delivery(3, 1_000 + IDLE_MS + 1, _span("f", "r"))], 3)
    finalized = {
        state.summary.trace_id[:1]: state.summary
        for state, _ in _finalized(_owed(truth_engine, 0, 2, 3))
    }
    assert sorted(finalized) == ["d", "f"]
    assert finalized["d"].status == "IN_PROGRESS"
    with truth_engine.connect() as connection:
        reasons = dict(connection.execute(sa.select(Trace.trace_id, Trace.final_reason)).all())
    assert reasons[_span("d", "x").trace_id] == "idle"


def test_span_content_and_attributes_are_stored(truth_engine):
    attributes = {"q": "weather?", "mlflow.spanInputs": {"city": "Zürich", "days": [1, 2]}}
    span = _span("g", "r", status_message="upstream timeout", attributes=attributes)
    _write(truth_engine, 0, [Delivery(1, 1, span)], 1)
    with truth_engine.connect() as connection:
        row = connection.execute(sa.select(Span.content, Span.attributes)).one()
    assert "upstream timeout" in row.content and "weather?" in row.content
    assert '"city":"Zürich"' in row.content, "a structured value's text as sent, not escaped"
    assert row.attributes == attributes


def test_rows_another_writer_stored_meanwhile_are_not_written_twice(truth_engine):
    """The spans of a trace the truth has never seen are copied straight in: should another
    writer (a producer that keyed the trace to two partitions) have stored one and finalized
    the trace meanwhile, the batch still goes through, each row once."""
    raced = _span("b", "c1", parent="r")
    root = _span("b", "r")
    _write(truth_engine, 1, [Delivery(3, 1000, raced), Delivery(3, 1000, root)], 3)
    with truth_engine.begin() as connection:  # as if partition 1 had not committed yet
        connection.execute(sa.delete(Trace))
        connection.execute(sa.delete(Span).where(Span.span_id == root.span_id))
    _write(truth_engine, 0, [Delivery(7, 1001, raced), Delivery(7, 1001, root)], 7)
    assert _count(truth_engine, Span) == 2
    [(state, offset)] = _finalized(_owed(truth_engine, 0, 6, 7))
    assert (offset, state.summary.span_count, state.summary.tags) == (7, 2, {"env": "prod"})


def test_what_the_writer_hands_over_is_what_the_truth_holds(truth_engine):
    """The aggregator counts the traces it has just finalized from what ``write_batch``
    returns, without reading them back: the same summaries as the stored rows give."""
    batch = [
        Delivery(20, 1000, _span("c", "r", trace_tags={"env": "prod", "user": "ana"})),
        Delivery(20, 1000, _span("c", "c1", parent="r", model="gpt-4o", input_tokens=7)),
        Delivery(21, 1000, _span("d", "r", status="ERROR", cost=1234)),
        Delivery(21, 1000, _span("e", "c1", parent="r")),  # stays open
    ]
    with truth_engine.begin() as connection:
        finalized = write_batch(connection, 3, batch, [], [], 21, 1000, IDLE_MS)
    with truth_engine.connect() as connection:
        handed = owed(connection, 3, 19, 21, known=finalized)
        read = owed(connection, 3, 19, 21)
    assert sorted(finalized) == ["c".ljust(32, "0"), "d".ljust(32, "0")]

    def facts(items):
        return {
            h.summary.trace_id: (h.summary, h.final_offset, sorted(s.span_id for s in h.spans))
            for h in items.histories
        }

    assert facts(handed) == facts(read)
