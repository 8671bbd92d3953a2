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

from trace_insights.core.assessments import Assessment, by_name
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
    """Apply the deliveries in offset order; ``finalized``: traces finalized before them."""
    if not deliveries:
        return
    offsets = [d.offset for d in deliveries]
    query = sa.select(AssessmentEvent.src_offset, AssessmentEvent.assessment_id).where(
        AssessmentEvent.src_partition == partition,
        AssessmentEvent.src_offset.between(min(offsets), max(offsets)),
    )
    done = {(row.src_offset, row.assessment_id) for row in connection.execute(query)}
    fresh = [d for d in deliveries if (d.offset, d.assessment.assessment_id) not in done]
    if not fresh:
        return
    ids = sorted({d.assessment.assessment_id for d in fresh})
    current: dict[str, tuple[str, Any]] = {}
    created: dict[str, int] = {}
    query = sa.select(
        AssessmentRow.assessment_id,
        AssessmentRow.name,
        AssessmentRow.value,
        AssessmentRow.created_ms,
    ).where(AssessmentRow.assessment_id.in_(ids))
    for row in connection.execute(query):
        current[row.assessment_id] = (row.name, row.value)
        created[row.assessment_id] = row.created_ms
    events = []
    latest: dict[str, dict[str, Any]] = {}
    for delivery in sorted(fresh, key=lambda d: d.offset):
        a = delivery.assessment
        previous = current.get(a.assessment_id)
        events.append(
            {
                "src_partition": partition,
                "src_offset": delivery.offset,
                "assessment_id": a.assessment_id,
                "trace_id": a.trace_id,
                "experiment_id": a.experiment_id,
                "name": a.name,
                "value": a.value,
                "previous": list(previous) if previous is not None else None,
                "deferred": a.trace_id not in finalized,
            }
        )
        if a.deleted:
            current.pop(a.assessment_id, None)
            latest.pop(a.assessment_id, None)
            continue
        current[a.assessment_id] = (a.name, a.value)
        latest[a.assessment_id] = {
            "assessment_id": a.assessment_id,
            "trace_id": a.trace_id,
            "experiment_id": a.experiment_id,
            "name": a.name,
            "value": a.value,
            "source_type": a.source_type,
            "source_id": a.source_id,
            "rationale": a.rationale,
            "created_ms": created.get(a.assessment_id, a.timestamp_ms),
            "updated_ms": a.timestamp_ms,
        }
    insert_ignoring_conflicts(connection, AssessmentEvent, events)
    connection.execute(sa.delete(AssessmentRow).where(AssessmentRow.assessment_id.in_(ids)))
    insert_ignoring_conflicts(connection, AssessmentRow, list(latest.values()))
    _keep_current(connection, sorted({d.assessment.trace_id for d in fresh} & finalized))


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
        .where(AssessmentRow.trace_id.in_(trace_ids))
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
