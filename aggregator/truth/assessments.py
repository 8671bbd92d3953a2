"""Assessments in the source of truth: their current values and the events that changed them.

Each delivery becomes one event row keyed by its (partition, offset, assessment id), written
once; a replayed delivery finds its row and changes nothing. An event on a finalized trace
owes a *move* (the previous value out, the new one in; a deletion only takes the old out); an
event on a trace still open is deferred: the trace's finalization snapshots the current values
and counts them then.
"""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from trace_insights.core.assessments import FEEDBACK, Assessment, by_name
from trace_insights.truth.bulk import insert_ignoring_conflicts, set_each
from trace_insights.truth.models import Assessment as AssessmentRow
from trace_insights.truth.models import AssessmentEvent, Trace


@dataclass(frozen=True)
class AssessmentDelivery:
    offset: int
    assessment: Assessment


@dataclass(frozen=True)
class Move:
    """An assessment of a finalized trace changed: ``previous`` (name, value) out, if any."""

    experiment_id: str
    trace_id: str
    name: str
    value: Any  # None when the assessment was deleted
    previous: tuple[str, Any] | None
    offset: int


def record(
    connection: sa.Connection,
    partition: int,
    deliveries: list[AssessmentDelivery],
    finalized: set[str],
) -> None:
    """Apply the deliveries in offset order; ``finalized``: traces finalized before them.

    Only valid feedback counts. An override makes the feedback it replaces invalid (its
    value moves out, its row stays readable); deleting the override makes it valid again,
    as MLflow does. An expectation is kept and counts nowhere."""
    if not deliveries:
        return
    offsets = [d.offset for d in deliveries]
    query = sa.select(AssessmentEvent.src_offset, AssessmentEvent.assessment_id).where(
        AssessmentEvent.src_partition == partition,
        AssessmentEvent.src_offset.between(min(offsets), max(offsets)),
    )
    done = {(row.src_offset, row.assessment_id) for row in connection.execute(query)}
    fresh = sorted(
        (d for d in deliveries if (d.offset, d.assessment.assessment_id) not in done),
        key=lambda d: d.offset,
    )
    if not fresh:
        return
    rows = _rows(connection, {d.assessment.assessment_id for d in fresh})
    named = {d.assessment.overrides for d in fresh} | {r["overrides"] for r in rows.values()}
    rows |= _rows(connection, {i for i in named if i is not None and i not in rows})
    touched = set(rows) | {d.assessment.assessment_id for d in fresh}
    events: list[dict[str, Any]] = []

    def moved(row: dict[str, Any], offset: int, before: Any, after: Any) -> None:
        """One event row per delivery (what makes a replay a no-op), even when nothing
        counted moves (an expectation, an invalid feedback)."""
        events.append(
            {
                "src_partition": partition,
                "src_offset": offset,
                "assessment_id": row["assessment_id"],
                "trace_id": row["trace_id"],
                "experiment_id": row["experiment_id"],
                "name": (after or before or (row["name"],))[0],
                "value": after[1] if after is not None else None,
                "previous": list(before) if before is not None else None,
                "deferred": row["trace_id"] not in finalized,
            }
        )

    for delivery in fresh:
        a, offset = delivery.assessment, delivery.offset
        old = rows.get(a.assessment_id)
        if a.deleted:
            rows.pop(a.assessment_id, None)
            moved(old or _row_of(a, None), offset, _counted(old), None)
            restored = rows.get(old["overrides"] or "") if old else None
            if restored is not None and not restored["valid"]:
                restored["valid"] = True
                moved(restored, offset, None, _counted(restored))
            continue
        new = _row_of(a, old)
        rows[a.assessment_id] = new
        moved(new, offset, _counted(old), _counted(new))
        replaced = rows.get(a.overrides or "")
        if old is None and replaced is not None and replaced["valid"]:
            before = _counted(replaced)
            replaced["valid"] = False
            if before is not None:
                moved(replaced, offset, before, None)
    insert_ignoring_conflicts(connection, AssessmentEvent, events)
    connection.execute(sa.delete(AssessmentRow).where(AssessmentRow.assessment_id.in_(touched)))
    insert_ignoring_conflicts(connection, AssessmentRow, list(rows.values()))
    traces = {row["trace_id"] for row in rows.values()} | {d.assessment.trace_id for d in fresh}
    _keep_current(connection, sorted(traces & finalized))


def _rows(connection: sa.Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(AssessmentRow).where(AssessmentRow.assessment_id.in_(sorted(ids)))
    columns = [c.key for c in AssessmentRow.__table__.columns]
    return {
        row.assessment_id: {c: getattr(row, c) for c in columns}
        for row in connection.execute(query)
    }


def _row_of(a: Assessment, old: dict[str, Any] | None) -> dict[str, Any]:
    """The row a delivery leaves; an update keeps the creation time, kind, validity and
    what the assessment overrides."""
    return {
        "assessment_id": a.assessment_id,
        "trace_id": a.trace_id,
        "experiment_id": a.experiment_id,
        "name": a.name,
        "value": a.value,
        "source_type": a.source_type,
        "source_id": a.source_id,
        "rationale": a.rationale,
        "created_ms": old["created_ms"] if old else a.timestamp_ms,
        "updated_ms": a.timestamp_ms,
        "kind": old["kind"] if old else a.kind,
        "valid": old["valid"] if old else True,
        "overrides": old["overrides"] if old else a.overrides,
        "details": a.details,
    }


def _counted(row: dict[str, Any] | None) -> tuple[str, Any] | None:
    """What a row adds to the counts: (name, value) of a valid feedback, else nothing (the
    rule of ``AssessmentRow.counted``)."""
    if row is None or row["kind"] != FEEDBACK or not row["valid"]:
        return None
    return row["name"], row["value"]


def _keep_current(connection: sa.Connection, trace_ids: list[str]) -> None:
    """The finalized traces' ``current_assessments``, read back from their assessment rows
    (idempotent); a trace still open gets them at its finalization."""
    if not trace_ids:
        return
    now = current_values(connection, trace_ids)
    values = {trace_id: by_name(now.get(trace_id, [])) for trace_id in trace_ids}
    set_each(connection, Trace, "current_assessments", values)


def current_values(connection: sa.Connection, trace_ids: list[str]) -> dict[str, list[list[Any]]]:
    """Trace → its assessments' [name, value] now (what a finalization counts)."""
    out: dict[str, list[list[Any]]] = {}
    query = (
        sa.select(AssessmentRow.trace_id, AssessmentRow.name, AssessmentRow.value)
        .where(AssessmentRow.trace_id.in_(trace_ids), AssessmentRow.counted())
        .order_by(AssessmentRow.assessment_id)
    )
    for row in connection.execute(query):
        out.setdefault(row.trace_id, []).append([row.name, row.value])
    return out


def move_of(row: Any) -> Move:
    """An ``assessment_events`` row as the move it owes."""
    return Move(
        experiment_id=row.experiment_id,
        trace_id=row.trace_id,
        name=row.name,
        value=row.value,
        previous=tuple(row.previous) if row.previous is not None else None,
        offset=row.src_offset,
    )
