"""Writes a partition's batch of spans to the source of truth and finalizes traces.

``write_batch`` runs in one transaction and is idempotent: spans are keyed by (trace id, span
id) and keep the offset of their first delivery; a trace is open until finalized once, by the
batch whose range holds its root (or whose stream time passes its idle timeout), and then
remembers that batch's last offset. ``owed`` reads back what a range of offsets owes the
aggregates.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from trace_insights.aggregator.truth.assessments import (
    AssessmentDelivery,
    Move,
    current_values,
    move_of,
)
from trace_insights.aggregator.truth.assessments import record as record_assessments
from trace_insights.aggregator.truth.history import History
from trace_insights.core.assessments import by_name
from trace_insights.core.records import SpanRecord, TraceSummary, summarize
from trace_insights.core.trace_tags import TagEdit
from trace_insights.truth import dialects, json_text, span_stats
from trace_insights.truth.bulk import insert_ignoring_conflicts, insert_new
from trace_insights.truth.models import (
    AssessmentEvent,
    Experiment,
    OpenTrace,
    Span,
    Trace,
    TraceTagEdit,
)

_CHUNK = 2000


@dataclass(frozen=True)
class Delivery:
    """A span as read from the topic: where it came from, and when (stream time)."""

    offset: int
    timestamp_ms: int
    span: SpanRecord


@dataclass(frozen=True)
class TagEditDelivery:
    offset: int
    edit: TagEdit


Edits = dict[str, list[tuple[int, str, str | None]]]  # trace → (offset, key, value), in order


@dataclass(frozen=True)
class Finalized:
    """A trace ``write_batch`` finalized: its summary as stored, and the spans counted with it."""

    summary: TraceSummary
    final_offset: int
    spans: list[SpanRecord]


@dataclass
class Owed:
    """What offsets (after, end] of one partition owe the aggregates: the history of every
    trace whose state changed there (finalized, late spans, assessment changes)."""

    after: int
    end: int
    histories: list[History]

    @property
    def late_spans(self) -> int:
        return sum(history.late_in(self.after, self.end) for history in self.histories)


def write_batch(
    connection: sa.Connection,
    partition: int,
    deliveries: Sequence[Delivery],
    assessments: list[AssessmentDelivery],
    tag_edits: list[TagEditDelivery],
    end_offset: int,
    clock_ms: int,
    idle_timeout_ms: int,
) -> dict[str, Finalized]:
    """``clock_ms`` is the batch's stream time (its latest record timestamp). Returns the traces
    this call finalized (what ``owed`` would read back)."""
    first: dict[tuple[str, str], Delivery] = {}
    for delivery in deliveries:
        key = (delivery.span.trace_id, delivery.span.span_id)
        if key not in first or delivery.offset < first[key].offset:
            first[key] = delivery
    _upsert_experiments(
        connection,
        {d.span.experiment_id for d in first.values()}
        | {d.assessment.experiment_id for d in assessments}
        | {d.edit.experiment_id for d in tag_edits},
    )
    trace_ids = {d.span.trace_id for d in first.values()}
    assessed = {d.assessment.trace_id for d in assessments}
    edited = {d.edit.trace_id for d in tag_edits}
    finalized = set(
        _scalars(
            connection, sa.select(Trace.trace_id), Trace.trace_id, trace_ids | assessed | edited
        )
    )
    _record_edits(connection, partition, tag_edits)
    open_ids = trace_ids - finalized
    # traces first seen in this batch have all their spans in hand: no need to read them back
    seen_before = set(
        _scalars(connection, sa.select(OpenTrace.trace_id), OpenTrace.trace_id, open_ids)
    )
    in_hand: dict[str, list[SpanRecord]] = {}
    for delivery in first.values():
        if delivery.span.trace_id in open_ids and delivery.span.trace_id not in seen_before:
            in_hand.setdefault(delivery.span.trace_id, []).append(delivery.span)
    # whole traces (first seen here, root included) are finalized below: never open
    whole = {trace_id for trace_id, spans in in_hand.items() if any(span.is_root for span in spans)}
    still_open = open_ids - whole
    _upsert_open_traces(
        connection, partition, [d for d in first.values() if d.span.trace_id in still_open]
    )
    reached = trace_ids & finalized
    query = sa.select(Span.trace_id, Span.span_id)
    stored = {
        (row.trace_id, row.span_id) for row in _rows(connection, query, Span.trace_id, reached)
    }
    # the spans of traces the truth has never seen are new rows; the others may be replays
    new_rows: list[dict[str, Any]] = []
    other_rows: list[dict[str, Any]] = []
    for d in first.values():
        trace_id = d.span.trace_id
        row = span_row(d.span, partition, d.offset, trace_id in finalized)
        (new_rows if trace_id in in_hand else other_rows).append(row)
    insert_new(connection, Span, new_rows)
    insert_ignoring_conflicts(connection, Span, other_rows)
    # a finalized trace is summarized anew only for a span it did not have (not for a replay)
    revised = {trace for trace, span in first if trace in reached and (trace, span) not in stored}
    _revise(connection, revised | (edited & finalized))
    record_assessments(connection, partition, assessments, finalized)
    rooted = set(whole)
    rooted.update(
        _scalars(
            connection,
            sa.select(Span.trace_id).where(Span.parent_span_id.is_(None)).distinct(),
            Span.trace_id,
            seen_before,
        )
    )
    idle = _idle(connection, partition, clock_ms, idle_timeout_ms) - rooted
    done = _finalize(connection, partition, end_offset, rooted, "root", in_hand)
    done.update(_finalize(connection, partition, end_offset, idle, "idle", in_hand))
    for chunk in _chunks(sorted(done.keys() - whole)):
        connection.execute(
            sa.delete(OpenTrace).where(dialects.of(connection).one_of(OpenTrace.trace_id, chunk))
        )
    return done


def _revise(connection: sa.Connection, trace_ids: set[str]) -> None:
    """Finalized traces that late spans reached are summarized anew from every stored span —
    status, times, tokens, tags, span stats —, so that filters read what the aggregates
    count."""
    if not trace_ids:
        return
    spans: dict[str, list[SpanRecord]] = {}
    query = sa.select(*LIGHT_COLUMNS, Span.trace_tags)
    for row in _rows(connection, query, Span.trace_id, trace_ids):
        spans.setdefault(row.trace_id, []).append(light_record(row, row.trace_tags))
    placed = sa.select(Trace.trace_id, Trace.final_partition)
    final = {
        row.trace_id: row.final_partition
        for row in _rows(connection, placed, Trace.trace_id, spans)
    }
    edits = tag_edits(connection, final)
    rows: list[dict[str, Any]] = []
    for trace_id, trace_spans in spans.items():
        summary = summarize(
            trace_id, trace_spans[0].experiment_id, trace_spans, _pairs(edits.get(trace_id, []))
        )
        rows.append({"key": trace_id, **_summary_columns(summary, trace_spans)})
    columns = [name for name in rows[0] if name != "key"]
    statement = (
        sa.update(Trace)
        .where(Trace.trace_id == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in columns})
    )
    for chunk in _chunks(rows):
        connection.execute(statement, chunk)


def _idle(connection: sa.Connection, partition: int, clock_ms: int, timeout_ms: int) -> set[str]:
    """The partition's open traces whose last span arrived ``timeout_ms`` before ``clock_ms``."""
    query = sa.select(OpenTrace.trace_id).where(
        OpenTrace.partition == partition, OpenTrace.last_seen_ms < clock_ms - timeout_ms
    )
    return set(connection.scalars(query))


def has_open_traces(connection: sa.Connection, partition: int) -> bool:
    query = sa.select(OpenTrace.trace_id).where(OpenTrace.partition == partition).limit(1)
    return connection.scalar(query) is not None


def owed(
    connection: sa.Connection,
    partition: int,
    after: int,
    end: int,
    known: dict[str, Finalized] | None = None,
) -> Owed:
    """The traces whose state changed in offsets (after, end] of a partition.

    ``known``: traces this process has just finalized (``write_batch``), not read again where
    the truth says they were finalized in the range (another writer's finalization won
    otherwise); such a trace has nothing late and no assessment change yet.
    """
    in_range = (Span.src_partition == partition, Span.src_offset > after, Span.src_offset <= end)
    late = set(connection.scalars(sa.select(Span.trace_id).where(*in_range, Span.late).distinct()))
    moved = _changed(connection, AssessmentEvent, partition, after, end, ~AssessmentEvent.deferred)
    edited = _changed(connection, TraceTagEdit, partition, after, end)
    placed = set(
        connection.scalars(
            sa.select(Trace.trace_id).where(
                Trace.final_partition == partition,
                Trace.final_offset > after,
                Trace.final_offset <= end,
            )
        )
    )
    known = known or {}
    fresh = [known[trace_id] for trace_id in placed if trace_id in known]
    others = (late | moved | edited | placed) - {f.summary.trace_id for f in fresh}
    rows = list(_rows(connection, sa.select(*TRACE_COLUMNS), Trace.trace_id, others))
    made = [History(f.summary, f.final_offset, list(f.spans)) for f in fresh]
    return Owed(after, end, made + histories(connection, rows))


def _changed(
    connection: sa.Connection,
    table: type[AssessmentEvent] | type[TraceTagEdit],
    partition: int,
    after: int,
    end: int,
    *conditions: sa.ColumnElement[bool],
) -> set[str]:
    """The traces with a change (an assessment event, a tag edit) in offsets (after, end]."""
    query = sa.select(table.trace_id).where(
        table.src_partition == partition,
        table.src_offset > after,
        table.src_offset <= end,
        *conditions,
    )
    return set(connection.scalars(query.distinct()))


def histories(connection: sa.Connection, rows: list[Any]) -> list[History]:
    """The histories of finalized traces (their ``TRACE_COLUMNS``), on their final partitions."""
    if not rows:
        return []
    unknown = [row.trace_id for row in rows]
    partition_of = {row.trace_id: row.final_partition for row in rows}
    late: dict[str, list[tuple[int, SpanRecord]]] = {}
    query = sa.select(*LIGHT_COLUMNS, Span.trace_tags, Span.src_partition, Span.src_offset)
    for row in _rows(connection, query.where(Span.late), Span.trace_id, unknown):
        if row.src_partition == partition_of[row.trace_id]:  # else a sender keyed it wrong
            late.setdefault(row.trace_id, []).append(
                (row.src_offset, light_record(row, row.trace_tags))
            )
    edits = tag_edits(connection, {t: partition_of[t] for t in unknown})
    summarized = late.keys() | edits.keys()  # their tags are summarized again: read them
    spans = final_spans(connection, [t for t in unknown if t not in summarized])
    query = sa.select(*LIGHT_COLUMNS, Span.trace_tags).where(sa.not_(Span.late))
    for row in _rows(connection, query, Span.trace_id, summarized):
        spans.setdefault(row.trace_id, []).append(light_record(row, row.trace_tags))
    events: dict[str, list[Move]] = {}
    assessed_events = sa.select(AssessmentEvent).where(sa.not_(AssessmentEvent.deferred))
    for row in _rows(connection, assessed_events, AssessmentEvent.trace_id, unknown):
        if row.src_partition == partition_of[row.trace_id]:
            events.setdefault(row.trace_id, []).append(move_of(row))
    return [
        History(
            summary=trace_summary(row),
            final_offset=row.final_offset,
            spans=spans.get(row.trace_id, []),
            late=sorted(late.get(row.trace_id, []), key=lambda item: (item[0], item[1].span_id)),
            events=sorted(events.get(row.trace_id, []), key=lambda move: move.offset),
            edits=edits.get(row.trace_id, []),
        )
        for row in rows
    ]


def _record_edits(
    connection: sa.Connection, partition: int, deliveries: list[TagEditDelivery]
) -> None:
    """One row per delivered edit; a replayed delivery finds its row."""
    rows = {
        (d.offset, d.edit.trace_id, d.edit.key): {
            "src_partition": partition,
            "src_offset": d.offset,
            "trace_id": d.edit.trace_id,
            "key": d.edit.key,
            "experiment_id": d.edit.experiment_id,
            "value": d.edit.value,
        }
        for d in deliveries  # a later edit of a key in the same record wins
    }
    insert_ignoring_conflicts(connection, TraceTagEdit, list(rows.values()))


def tag_edits(connection: sa.Connection, partition_of: dict[str, int]) -> Edits:
    """The traces' tag edits delivered on their partitions, in offset order."""
    out: Edits = {}
    query = sa.select(TraceTagEdit).order_by(TraceTagEdit.src_offset, TraceTagEdit.key)
    for row in _rows(connection, query, TraceTagEdit.trace_id, partition_of):
        if row.src_partition == partition_of[row.trace_id]:  # else a sender keyed it wrong
            out.setdefault(row.trace_id, []).append((row.src_offset, row.key, row.value))
    return out


def _pairs(edits: list[tuple[int, str, str | None]]) -> list[tuple[str, str | None]]:
    return [(key, value) for _, key, value in edits]


def final_spans(connection: sa.Connection, trace_ids: list[str]) -> dict[str, list[SpanRecord]]:
    """The spans finalized traces were counted with (their non-late spans), per trace."""
    spans: dict[str, list[SpanRecord]] = {trace_id: [] for trace_id in trace_ids}
    query = sa.select(*LIGHT_COLUMNS).where(sa.not_(Span.late))
    for row in _rows(connection, query, Span.trace_id, trace_ids):
        spans[row.trace_id].append(light_record(row))
    return spans


def _finalize(
    connection: sa.Connection,
    partition: int,
    end_offset: int,
    trace_ids: set[str],
    reason: str,
    in_hand: dict[str, list[SpanRecord]],
) -> dict[str, Finalized]:
    """Write each trace's summary once (a concurrent finalization of the same trace loses)."""
    if not trace_ids:
        return {}
    spans = {trace_id: in_hand[trace_id] for trace_id in trace_ids if trace_id in in_hand}
    query = sa.select(*LIGHT_COLUMNS, Span.trace_tags)
    for row in _rows(connection, query, Span.trace_id, trace_ids - spans.keys()):
        span = light_record(row)
        span.trace_tags = row.trace_tags or {}
        spans.setdefault(row.trace_id, []).append(span)
    rows: list[dict[str, Any]] = []
    assessed = current_values(connection, sorted(spans))
    edits = tag_edits(connection, dict.fromkeys(spans, partition))
    done = {}
    for trace_id, trace_spans in spans.items():
        summary = summarize(
            trace_id, trace_spans[0].experiment_id, trace_spans, _pairs(edits.get(trace_id, []))
        )
        counted = assessed.get(trace_id, [])
        summary.assessments = tuple((name, value) for name, value in counted)
        rows.append(trace_row(summary, trace_spans, partition, end_offset, reason, counted))
        done[trace_id] = Finalized(summary, end_offset, trace_spans)
    # open until now: no row is theirs, unless another writer finalized them meanwhile
    insert_new(connection, Trace, rows)
    return done


LIGHT_COLUMNS = (
    Span.trace_id,
    Span.span_id,
    Span.parent_span_id,
    Span.experiment_id,
    Span.name,
    Span.span_type,
    Span.status,
    Span.start_time_ns,
    Span.end_time_ns,
    Span.tool_name,
    Span.model,
    Span.input_tokens,
    Span.output_tokens,
    Span.provider,
    Span.cost,
)


def light_record(row: Any, trace_tags: dict[str, str] | None = None) -> SpanRecord:
    """What aggregation needs of a span: no attributes or content, and its trace tags only
    where they are summarized again (else the trace's tags live on the trace)."""
    return SpanRecord(
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        experiment_id=row.experiment_id,
        name=row.name,
        span_type=row.span_type,
        status=row.status,
        status_message="",
        start_time_ns=row.start_time_ns,
        end_time_ns=row.end_time_ns,
        tool_name=row.tool_name,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        attributes={},
        provider=row.provider,
        cost=row.cost,
        trace_tags=trace_tags or {},
    )


TRACE_COLUMNS = (  # what a trace's history is made of (``histories``, ``trace_summary``)
    Trace.trace_id,
    Trace.experiment_id,
    Trace.final_partition,
    Trace.final_offset,
    Trace.timestamp_ms,
    Trace.execution_time_ms,
    Trace.status,
    Trace.root_name,
    Trace.input_tokens,
    Trace.output_tokens,
    Trace.span_count,
    Trace.tags,
    Trace.cost,
    Trace.unpriced_calls,
    Trace.assessments,
)


def trace_summary(row: Any) -> TraceSummary:
    return TraceSummary(
        trace_id=row.trace_id,
        experiment_id=row.experiment_id,
        timestamp_ms=row.timestamp_ms,
        execution_time_ms=row.execution_time_ms,
        status=row.status,
        root_name=row.root_name,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        span_count=row.span_count,
        tags=row.tags or {},
        cost=row.cost,
        unpriced_calls=row.unpriced_calls,
        assessments=tuple((name, value) for name, value in row.assessments or ()),
    )


def trace_row(
    summary: TraceSummary,
    spans: list[SpanRecord],
    partition: int,
    offset: int,
    reason: str,
    assessments: Sequence[Sequence[Any]] = (),
) -> dict[str, Any]:
    """The ``traces`` row of a trace finalized at (partition, offset) with ``spans`` and
    ``assessments`` ([name, value] pairs: counted with it, and its current values until one
    changes)."""
    return {
        "trace_id": summary.trace_id,
        "experiment_id": summary.experiment_id,
        "final_partition": partition,
        "final_offset": offset,
        "final_reason": reason,
        **_summary_columns(summary, spans),
        "assessments": [list(pair) for pair in assessments],
        "current_assessments": by_name(assessments),
    }


def _summary_columns(summary: TraceSummary, spans: list[SpanRecord]) -> dict[str, Any]:
    """The columns of a ``traces`` row that its spans decide (a late span revises them)."""
    return {
        "timestamp_ms": summary.timestamp_ms,
        "execution_time_ms": summary.execution_time_ms,
        "status": summary.status,
        "root_name": summary.root_name,
        "input_tokens": summary.input_tokens,
        "output_tokens": summary.output_tokens,
        "total_tokens": summary.input_tokens + summary.output_tokens,
        "span_count": summary.span_count,
        "cost": summary.cost,
        "unpriced_calls": summary.unpriced_calls,
        "tags": summary.tags,
        "span_stats": span_stats.count(
            (span.span_type, span.status, span.tool_name, span.model) for span in spans
        ),
    }


def span_row(span: SpanRecord, partition: int, offset: int, late: bool) -> dict[str, Any]:
    """The ``spans`` row of a span first delivered at (partition, offset)."""
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "experiment_id": span.experiment_id,
        "name": span.name,
        "span_type": span.span_type,
        "status": span.status,
        "status_message": span.status_message,
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
        "duration_ms": span.duration_ms,
        "tool_name": span.tool_name,
        "model": span.model,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "attributes": span.attributes,
        "events": span.events,
        "usage": span.usage,
        "provider": span.provider,
        "cost": span.cost,
        "priced_by": span.priced_by,
        "trace_tags": span.trace_tags,
        "content": _content(span),
        "src_partition": partition,
        "src_offset": offset,
        "late": late,
    }


def _content(span: SpanRecord) -> str:
    """The searchable text of a span: name, status message, attribute values (other than
    text, as JSON: its strings as sent, not escaped), event names."""
    parts = [span.name, span.status_message, *span.events]
    for value in span.attributes.values():
        parts.append(value if isinstance(value, str) else json_text.dumps(value))
    return "\n".join(part for part in parts if part)


def _upsert_experiments(connection: sa.Connection, experiment_ids: set[str]) -> None:
    if not experiment_ids:
        return
    rows = [{"experiment_id": e, "created_ms": 0} for e in sorted(experiment_ids)]
    connection.execute(dialects.of(connection).insert(Experiment).on_conflict_do_nothing(), rows)


def _upsert_open_traces(
    connection: sa.Connection, partition: int, deliveries: Iterable[Delivery]
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        row = seen.get(delivery.span.trace_id)
        if row is None:
            seen[delivery.span.trace_id] = {
                "trace_id": delivery.span.trace_id,
                "experiment_id": delivery.span.experiment_id,
                "partition": partition,
                "first_seen_ms": delivery.timestamp_ms,
                "last_seen_ms": delivery.timestamp_ms,
            }
        else:
            row["first_seen_ms"] = min(row["first_seen_ms"], delivery.timestamp_ms)
            row["last_seen_ms"] = max(row["last_seen_ms"], delivery.timestamp_ms)
    if not seen:
        return
    dialect = dialects.of(connection)
    statement = dialect.insert(OpenTrace)
    statement = statement.on_conflict_do_update(
        index_elements=[OpenTrace.trace_id],
        set_={
            "last_seen_ms": dialect.greatest(
                OpenTrace.last_seen_ms, statement.excluded.last_seen_ms
            )
        },
    )
    connection.execute(statement, list(seen.values()))


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(
    connection: sa.Connection, query: sa.Select, column: Any, keys: Iterable[str]
) -> Iterator[Any]:
    """``query`` restricted to ``column IN keys``, a chunk of keys at a time."""
    for chunk in _chunks(sorted(keys)):
        yield from connection.execute(query.where(dialects.of(connection).one_of(column, chunk)))


def _scalars(
    connection: sa.Connection, query: sa.Select, column: Any, keys: Iterable[str]
) -> Iterator[Any]:
    for row in _rows(connection, query, column, keys):
        yield row[0]


def last_offsets(connection: sa.Connection) -> dict[int, int]:
    """Partition → the highest offset any row of the truth came from (spans, finalizations,
    assessment events): where an embedded bus must continue after a restart."""
    out: dict[int, int] = {}
    for partition, offset in (
        (Span.src_partition, Span.src_offset),
        (Trace.final_partition, Trace.final_offset),
        (AssessmentEvent.src_partition, AssessmentEvent.src_offset),
    ):
        query = sa.select(partition, sa.func.max(offset)).group_by(partition)
        for row in connection.execute(query):
            out[row[0]] = max(out.get(row[0], -1), int(row[1]))
    return out
