"""``trace-insights rebuild``: recompute an experiment's aggregates from the source of truth.

Redis holds derived state only. A rebuild takes the experiment's rebuild claim, drops its
aggregates (for a time range, the buckets of the whole UTC days it touches) and replays every
finalized trace, late span and assessment change of that range, per partition in offset order
— as live ingestion did. While it runs the aggregates are not whole: live updates wait and
answers are flagged. Only what the aggregates held is replayed: a range rebuild replays what
lies at or below each partition's fence; a full one replays all the truth holds (read after
the drop, so every update applied before it is there) and moves each fence to the last offset
replayed, so aggregators resuming from Kafka apply only what comes after. Safe to run beside
live aggregators: it is also how they repair a store that lost an experiment's aggregates.
"""

import contextlib
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from trace_insights.aggregator.deltas import Move, Policy, accumulate
from trace_insights.aggregator.truth.writer import TRACE_COLUMNS, histories
from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start
from trace_insights.stores.base import NO_FENCE, AggregateStore, Incomplete, Update
from trace_insights.truth.models import AssessmentEvent, Experiment, Span, Trace, TraceTagEdit

_CHUNK = 500
DAY = WIDTH_MS[Resolution.DAY]

Progress = Callable[[int], None]


class Busy(Exception):
    """Another rebuild of the experiment holds its claim."""


def rebuild(
    engine: sa.Engine,
    store: AggregateStore,
    policy: Policy,
    start_ms: int | None = None,
    end_ms: int | None = None,
    experiment_ids: list[str] | None = None,
    progress: Progress = lambda done: None,
) -> int:
    """Returns the number of traces replayed; ``progress`` is called with each chunk's size."""
    if (start_ms is None) != (end_ms is None):
        raise ValueError("give both start and end of the range, or neither")
    with engine.connect() as connection:
        experiments = experiment_ids or list(
            connection.scalars(sa.select(Experiment.experiment_id))
        )
    return sum(
        rebuild_experiment(engine, store, policy, e, start_ms, end_ms, progress)
        for e in experiments
    )


def rebuild_experiment(
    engine: sa.Engine,
    store: AggregateStore,
    policy: Policy,
    experiment_id: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Progress = lambda done: None,
) -> int:
    """Rebuild one experiment; a range is ignored if its aggregates are not whole (there is
    nothing to keep). Raises ``Busy`` if another rebuild holds the claim, ``Incomplete`` if
    this one lost it (it took too long, or the store restarted)."""
    token = secrets.randbits(62) + 1
    if not store.claim_rebuild(experiment_id, token):
        raise Busy(f"experiment {experiment_id}: another rebuild is under way")
    try:
        replayed = _rebuild_claimed(
            engine, store, policy, experiment_id, token, start_ms, end_ms, progress
        )
    except BaseException:
        with contextlib.suppress(Exception):  # else the claim expires
            store.release_rebuild(experiment_id, token)
        raise
    if not store.finish_rebuild(experiment_id, token):
        raise Incomplete(experiment_id, "the rebuild's claim was lost")
    return replayed


def _rebuild_claimed(
    engine: sa.Engine,
    store: AggregateStore,
    policy: Policy,
    experiment_id: str,
    token: int,
    start_ms: int | None,
    end_ms: int | None,
    progress: Progress,
) -> int:
    if store.generations([experiment_id])[0] is None:
        start_ms = end_ms = None
    if start_ms is not None and end_ms is not None:
        start_ms, end_ms = day_range(start_ms, end_ms)
    store.drop(experiment_id, start_ms, end_ms)
    replayed = 0
    with engine.connect() as connection:
        if start_ms is None:
            bounds = _last_offsets(connection, experiment_id)
        else:
            bounds = store.fences(experiment_id)
        fences = store.fences(experiment_id)  # the chunks leave them as they are
        for partition, moves in _states(connection, experiment_id, start_ms, end_ms, bounds):
            for update in accumulate(moves, partition, store, policy):
                update.expected_fence = update.fence = fences.get(partition, NO_FENCE)
                update.token = token
                store.apply(update)  # no fence moves without the claim
            replayed += len(moves)
            progress(len(moves))
    if start_ms is None:
        for partition, last in bounds.items():
            current = fences.get(partition, NO_FENCE)
            store.apply(Update(experiment_id, partition, current, last, token=token))
    return replayed


def day_range(start_ms: int, end_ms: int) -> tuple[int, int]:
    """A range widened to whole UTC days: what a range rebuild drops and replays."""
    return bucket_start(start_ms, Resolution.DAY), bucket_start(end_ms - 1, Resolution.DAY) + DAY


def count_traces(
    engine: sa.Engine, start_ms: int | None, end_ms: int | None, experiment_ids: list[str] | None
) -> int:
    query = in_range(
        sa.select(sa.func.count()).select_from(Trace), start_ms, end_ms, experiment_ids
    )
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def in_range(
    query: sa.Select[Any],
    start_ms: int | None,
    end_ms: int | None,
    experiment_ids: list[str] | None,
) -> sa.Select[Any]:
    """``query`` of traces narrowed to the experiments and to the whole UTC days of a range
    (what a rebuild replays)."""
    if experiment_ids:
        query = query.where(Trace.experiment_id.in_(experiment_ids))
    if start_ms is not None and end_ms is not None:
        low, high = day_range(start_ms, end_ms)
        query = query.where(Trace.timestamp_ms >= low, Trace.timestamp_ms < high)
    return query


def _last_offsets(connection: sa.Connection, experiment_id: str) -> dict[int, int]:
    """Partition → the last offset at which the truth holds something the experiment's
    aggregates count, in one statement (one snapshot of the truth)."""
    parts = sa.union_all(
        sa.select(Trace.final_partition.label("p"), sa.func.max(Trace.final_offset).label("o"))
        .where(Trace.experiment_id == experiment_id)
        .group_by(Trace.final_partition),
        sa.select(Span.src_partition, sa.func.max(Span.src_offset))
        .where(Span.experiment_id == experiment_id, Span.late)
        .group_by(Span.src_partition),
        sa.select(AssessmentEvent.src_partition, sa.func.max(AssessmentEvent.src_offset))
        .where(AssessmentEvent.experiment_id == experiment_id, sa.not_(AssessmentEvent.deferred))
        .group_by(AssessmentEvent.src_partition),
        sa.select(TraceTagEdit.src_partition, sa.func.max(TraceTagEdit.src_offset))
        .where(TraceTagEdit.experiment_id == experiment_id)
        .group_by(TraceTagEdit.src_partition),
    ).subquery()
    query = sa.select(parts.c.p, sa.func.max(parts.c.o)).group_by(parts.c.p)
    return {int(partition): int(offset) for partition, offset in connection.execute(query)}


def _states(
    connection: sa.Connection,
    experiment_id: str,
    start_ms: int | None,
    end_ms: int | None,
    bounds: dict[int, int],
) -> Iterator[tuple[int, list[Move]]]:
    """(partition, its traces' states at its bound), a chunk of traces at a time."""
    in_range: sa.ColumnElement[bool] = sa.true()
    if start_ms is not None and end_ms is not None:
        in_range = sa.and_(Trace.timestamp_ms >= start_ms, Trace.timestamp_ms < end_ms)
    traces = connection.execute(
        sa.select(*TRACE_COLUMNS)
        .where(Trace.experiment_id == experiment_id, in_range)
        .order_by(Trace.final_partition, Trace.final_offset)
    )
    for rows in _by_partition(traces, bounds):
        partition = rows[0].final_partition
        bound = bounds[partition]
        moves: list[Move] = []
        for history in histories(connection, rows):
            state = history.at(bound)
            if state is None:
                continue
            ranged = start_ms is not None and end_ms is not None
            if ranged and not start_ms <= state.summary.timestamp_ms < end_ms:  # type: ignore[operator]
                continue  # its buckets were not dropped
            moves.append((None, state))
        yield partition, moves


def _by_partition(rows: Iterable[Any], bounds: dict[int, int]) -> Iterator[list[Any]]:
    """Trace rows ordered by partition, cut into chunks of one partition and at most _CHUNK
    rows; traces finalized past their partition's bound are left out."""
    chunk: list[Any] = []
    for row in rows:
        if row.final_offset > bounds.get(row.final_partition, -1):
            continue
        if chunk and (len(chunk) >= _CHUNK or chunk[-1].final_partition != row.final_partition):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk
