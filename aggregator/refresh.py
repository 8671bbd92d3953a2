"""Recomputes, from PostgreSQL, the digests a move could not take a value out of.

A late span that changes its trace's latency (or moves the trace to another bucket) leaves the
old value in a t-digest, which cannot retract; the update that moved the trace marked that
digest dirty (``deltas.py``), in the same atomic step. Every few seconds the aggregator owning
the partition rebuilds each of its dirty digests from the traces PostgreSQL holds now — its
partition's copy only, the one it alone writes — and clears the mark with the same fenced
update, so a digest is stale for seconds at most, and never twice.
"""

import json
import logging
from collections.abc import Iterable

import sqlalchemy as sa

from trace_insights.aggregator.deltas import LATENCY, Policy
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import WIDTH_MS, Resolution
from trace_insights.stores.base import NO_FENCE, AggregateStore, Incomplete, Update
from trace_insights.truth.models import Span, Trace

log = logging.getLogger(__name__)


class DigestRefresher:
    def __init__(self, engine: sa.Engine, store: AggregateStore, policy: Policy) -> None:
        self._engine = engine
        self._store = store
        self._policy = policy
        self._pending: set[str] | None = None  # experiments to look at; None: all of them

    def note(self, experiment_ids: Iterable[str]) -> None:
        """Experiments an applied update marked dirty digests of."""
        if self._pending is not None:
            self._pending.update(experiment_ids)

    def refresh(self, partitions: list[int]) -> int:
        """Recompute the dirty digests of these partitions; returns how many."""
        if self._pending is None:  # after a start, marks left by whoever came before
            self._pending = self._store.experiments()
        done = 0
        for experiment_id in sorted(self._pending):
            marks: dict[int, list[tuple[str, str, int, str]]] = {}
            for member in self._store.dirty(experiment_id):
                metric, resolution, start, partition = json.loads(member)
                marks.setdefault(partition, []).append((metric, resolution, start, member))
            for partition in set(marks) & set(partitions):
                done += self._refresh(experiment_id, partition, marks.pop(partition))
            if not marks:
                self._pending.discard(experiment_id)
        return done

    def _refresh(
        self, experiment_id: str, partition: int, marks: list[tuple[str, str, int, str]]
    ) -> int:
        fence = self._store.fences(experiment_id).get(partition, NO_FENCE)
        update = Update(experiment_id, partition, fence, fence)
        with self._engine.connect() as connection:
            for metric, resolution, start, member in marks:
                values = _values(
                    connection,
                    experiment_id,
                    partition,
                    fence,
                    metric,
                    Resolution(resolution),
                    start,
                )
                key = keys.digests(experiment_id, Resolution(resolution), start, metric)
                update.blobs[(key, str(partition))] = sketch.dump(sketch.of_values(values))
                ttl = self._policy.ttl_ms[Resolution(resolution)]
                update.expire_at_ms[key] = start + WIDTH_MS[Resolution(resolution)] + ttl
                update.clean.add(member)
                update.changed.append((resolution, start))
        try:
            applied = self._store.apply(update)
        except Incomplete:  # being rebuilt: the rebuild writes every digest anew
            return 0
        return len(marks) if applied else 0  # else the fence moved: next time


def _values(
    connection: sa.Connection,
    experiment_id: str,
    partition: int,
    fence: int,
    metric: str,
    resolution: Resolution,
    start_ms: int,
) -> list[float]:
    """What the partition's copy of the digest holds at its fence, read from the truth."""
    in_bucket = (
        Trace.experiment_id == experiment_id,
        Trace.final_partition == partition,
        Trace.final_offset <= fence,
        Trace.timestamp_ms >= start_ms,
        Trace.timestamp_ms < start_ms + WIDTH_MS[resolution],
    )
    if metric == LATENCY:
        latencies = sa.select(Trace.execution_time_ms).where(*in_bucket)
        return [float(value) for value in connection.scalars(latencies)]
    kind, _, name = metric.partition(":")
    column = Span.tool_name if kind == "tool" else Span.model
    query = (
        sa.select(Span.start_time_ns, Span.end_time_ns)
        .join(Trace, Trace.trace_id == Span.trace_id)
        .where(*in_bucket, column == name)
        .where(Span.src_partition == partition, Span.src_offset <= fence)
    )
    return [(end - start) / 1e6 for start, end in connection.execute(query)]
