"""``trace-insights rebuild``: recompute the aggregates from the source of truth.

Redis holds derived state only. A rebuild drops the experiment's aggregates (for a time range,
the buckets of the whole UTC days it touches) and replays every finalized trace, late span and
assessment change of that range, per partition in offset order — as live ingestion did. A full
rebuild also sets each fence to the last offset the truth holds, so aggregators resuming from
Kafka skip what the rebuild applied. Run it with the aggregators stopped.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from trace_insights.aggregator.deltas import Policy, accumulate
from trace_insights.aggregator.truth.assessments import move_of
from trace_insights.aggregator.truth.writer import (
    LIGHT_COLUMNS,
    Owed,
    final_spans,
    light_record,
    trace_summary,
    with_traces,
)
from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start
from trace_insights.stores.base import AggregateStore
from trace_insights.truth.models import AssessmentEvent, Experiment, Span, Trace

_CHUNK = 500
DAY = WIDTH_MS[Resolution.DAY]


def rebuild(
    engine: sa.Engine,
    store: AggregateStore,
    policy: Policy,
    start_ms: int | None = None,
    end_ms: int | None = None,
    experiment_ids: list[str] | None = None,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Returns the number of traces replayed; ``progress`` is called with each chunk's size."""
    if (start_ms is None) != (end_ms is None):
        raise ValueError("give both start and end of the range, or neither")
    if start_ms is not None and end_ms is not None:
        start_ms = bucket_start(start_ms, Resolution.DAY)
        end_ms = bucket_start(end_ms - 1, Resolution.DAY) + DAY
    with engine.connect() as connection:
        experiments = experiment_ids or list(
            connection.scalars(sa.select(Experiment.experiment_id))
        )
        replayed = 0
        for experiment_id in experiments:
            store.drop(experiment_id, start_ms, end_ms)
            for partition, owed, last_offset in _owed_chunks(
                connection, experiment_id, start_ms, end_ms
            ):
                for update in accumulate(owed, partition, store, policy):
                    current = store.fences(experiment_id).get(partition, -1)
                    update.expected_fence = current
                    update.fence = current if start_ms is not None else max(current, last_offset)
                    if not store.apply(update):
                        raise RuntimeError(
                            f"experiment {experiment_id}: a fence moved during the rebuild; "
                            "stop the aggregators and run it again"
                        )
                replayed += len(owed.finalized)
                progress(len(owed.finalized))
    return replayed


def count_traces(
    engine: sa.Engine, start_ms: int | None, end_ms: int | None, experiment_ids: list[str] | None
) -> int:
    query = sa.select(sa.func.count()).select_from(Trace)
    if experiment_ids:
        query = query.where(Trace.experiment_id.in_(experiment_ids))
    if start_ms is not None and end_ms is not None:
        query = query.where(
            Trace.timestamp_ms >= bucket_start(start_ms, Resolution.DAY),
            Trace.timestamp_ms < bucket_start(end_ms - 1, Resolution.DAY) + DAY,
        )
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def _owed_chunks(
    connection: sa.Connection, experiment_id: str, start_ms: int | None, end_ms: int | None
) -> Iterator[tuple[int, Owed, int]]:
    """(partition, what to replay, the last offset it covers), in offset order per partition."""
    in_range = sa.true()
    if start_ms is not None and end_ms is not None:
        in_range = sa.and_(Trace.timestamp_ms >= start_ms, Trace.timestamp_ms < end_ms)
    traces = connection.execute(
        sa.select(Trace)
        .where(Trace.experiment_id == experiment_id, in_range)
        .order_by(Trace.final_partition, Trace.final_offset)
    )
    for rows in _by_partition(traces, "final_partition"):
        yield _finalized_chunk(connection, rows)
    late = connection.execute(
        sa.select(*LIGHT_COLUMNS, Span.src_partition, Span.src_offset, Trace.timestamp_ms)
        .join(Trace, Trace.trace_id == Span.trace_id)
        .where(Span.experiment_id == experiment_id, Span.late, in_range)
        .order_by(Span.src_partition, Span.src_offset)
    )
    for rows in _by_partition(late, "src_partition"):
        yield _late_chunk(rows)
    events = connection.execute(
        sa.select(AssessmentEvent)
        .join(Trace, Trace.trace_id == AssessmentEvent.trace_id)
        .where(
            AssessmentEvent.experiment_id == experiment_id,
            sa.not_(AssessmentEvent.deferred),
            in_range,
        )
        .order_by(AssessmentEvent.src_partition, AssessmentEvent.src_offset)
    )
    for rows in _by_partition(events, "src_partition"):
        yield _moves_chunk(connection, rows)


def _by_partition(rows: Iterable[Any], column: str) -> Iterator[list[Any]]:
    """Rows ordered by partition, cut into chunks of one partition and at most _CHUNK rows."""
    chunk: list[Any] = []
    for row in rows:
        if chunk and (len(chunk) >= _CHUNK or getattr(chunk[-1], column) != getattr(row, column)):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def _finalized_chunk(connection: sa.Connection, rows: list) -> tuple[int, Owed, int]:
    spans = final_spans(connection, [row.trace_id for row in rows])
    finalized = [(trace_summary(row), spans[row.trace_id], row.final_offset) for row in rows]
    return rows[0].final_partition, Owed(finalized=finalized, late=[]), rows[-1].final_offset


def _moves_chunk(connection: sa.Connection, rows: list) -> tuple[int, Owed, int]:
    moves = with_traces(connection, [move_of(row) for row in rows])
    return rows[0].src_partition, Owed(finalized=[], late=[], moves=moves), rows[-1].src_offset


def _late_chunk(rows: list) -> tuple[int, Owed, int]:
    late = [(light_record(row), row.src_offset, row.timestamp_ms) for row in rows]
    return rows[0].src_partition, Owed(finalized=[], late=late), rows[-1].src_offset
