"""What finalized traces and late spans add to the aggregates: one ``Update`` per experiment.

Every trace is bucketed by its event time (its first span's start) at each resolution. Trace
facts (count, status, latency, tokens, tags, tools used, dimensions) are added once, at
finalization, with the span facts of the spans received by then; late spans add span facts.
"""

from dataclasses import dataclass, field

import numpy as np

from aggregator.stores.base import AggregateStore, Update
from aggregator.truth.writer import Owed
from trace_insights.core import dimensions, keys, sketch
from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start
from trace_insights.core.keys import fields
from trace_insights.core.records import SpanRecord, TraceSummary


@dataclass(frozen=True)
class Policy:
    """What is kept, and for how long."""

    ttl_ms: dict[Resolution, int]
    cooccurrence: tuple[Resolution, ...] = (Resolution.HOUR, Resolution.DAY)
    tag_value_cap: int = 100


@dataclass
class _Experiment:
    update: Update
    digest_values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # (resolution, bucket start) → the dimension sets of the traces finalized there
    dimension_sets: dict[tuple[Resolution, int], list[list[str]]] = field(default_factory=dict)


class TagRegistry:
    """Which tag values are counted by name: the first ``cap`` values of each key, per
    experiment; decided by the store, atomically, the same way for live ingestion and rebuilds.
    """

    def __init__(self, store: AggregateStore, experiment_id: str, cap: int) -> None:
        self._store = store
        self._experiment = experiment_id
        self._cap = cap
        self._decided: dict[tuple[str, str], bool] = {}

    def decide(self, tags: set[tuple[str, str]]) -> None:
        """Ask the store about every (key, value) not decided yet, in one round trip."""
        pending = sorted(tags - self._decided.keys())
        for tag, admitted in zip(
            pending, self._store.admit_tags(self._experiment, pending, self._cap), strict=True
        ):
            self._decided[tag] = admitted

    def value(self, key: str, value: str) -> str:
        return value if self._decided[(key, value)] else dimensions.OTHER


def build_updates(
    owed: Owed, partition: int, end_offset: int, store: AggregateStore, policy: Policy
) -> list[Update]:
    """Live path: one update per experiment with something owed past its fence, carrying the
    fence it was computed against and the new one (``end_offset``)."""
    fences: dict[str, int] = {}

    def fence(experiment_id: str) -> int:
        if experiment_id not in fences:
            fences[experiment_id] = store.fences(experiment_id).get(partition, -1)
        return fences[experiment_id]

    pending = Owed(
        finalized=[item for item in owed.finalized if item[2] > fence(item[0].experiment_id)],
        late=[item for item in owed.late if item[1] > fence(item[0].experiment_id)],
    )
    updates = accumulate(pending, partition, store, policy)
    for update in updates:
        update.expected_fence = fences[update.experiment_id]
        update.fence = end_offset
    return updates


def accumulate(owed: Owed, partition: int, store: AggregateStore, policy: Policy) -> list[Update]:
    """The deltas of ``owed``, one update per experiment; fences are left to the caller."""
    by_experiment: dict[str, _Experiment] = {}
    registries: dict[str, TagRegistry] = {}

    def target(experiment_id: str) -> _Experiment:
        if experiment_id not in by_experiment:
            by_experiment[experiment_id] = _Experiment(Update(experiment_id, partition, -1, -1))
            registries[experiment_id] = TagRegistry(store, experiment_id, policy.tag_value_cap)
        return by_experiment[experiment_id]

    seen: dict[str, set[tuple[str, str]]] = {}
    for summary, _, _ in owed.finalized:
        target(summary.experiment_id)
        seen.setdefault(summary.experiment_id, set()).update(summary.tags.items())
    for experiment_id, tags in seen.items():
        registries[experiment_id].decide(tags)
    for summary, spans, _ in owed.finalized:
        experiment = target(summary.experiment_id)
        _add_trace(experiment, summary, spans, registries[summary.experiment_id], policy)
    for span, _, timestamp_ms in owed.late:
        experiment = target(span.experiment_id)
        for resolution in Resolution:
            start = bucket_start(timestamp_ms, resolution)
            bucket = keys.bucket(span.experiment_id, resolution, start)
            experiment.update.counters[(bucket, fields.LATE_SPANS)] += 1
            _add_span(experiment, span, resolution, start, policy)
    for experiment in by_experiment.values():
        _finish(experiment, store)
    return [experiment.update for experiment in by_experiment.values()]


def _add_trace(
    experiment: _Experiment,
    summary: TraceSummary,
    spans: list[SpanRecord],
    registry: TagRegistry,
    policy: Policy,
) -> None:
    update = experiment.update
    tags = {key: registry.value(key, value) for key, value in summary.tags.items()}
    dims = sorted(dimensions.of_trace(summary, spans, lambda key, value: tags[key]))
    tools = {span.tool_name for span in spans if span.tool_name is not None}
    latency = float(summary.execution_time_ms)
    for resolution in Resolution:
        start = bucket_start(summary.timestamp_ms, resolution)
        bucket = keys.bucket(summary.experiment_id, resolution, start)
        _expire(update, bucket, resolution, start, policy)
        counters = update.counters
        counters[(bucket, fields.TRACES)] += 1
        counters[(bucket, fields.status(summary.status))] += 1
        counters[(bucket, fields.INPUT_TOKENS)] += summary.input_tokens
        counters[(bucket, fields.OUTPUT_TOKENS)] += summary.output_tokens
        update.add_sum(bucket, fields.LATENCY_SUM, latency)
        update.add_min(bucket, fields.LATENCY_MIN, latency)
        update.add_max(bucket, fields.LATENCY_MAX, latency)
        _digest(experiment, summary.experiment_id, resolution, start, "latency", latency, policy)
        for tool in tools:
            counters[(bucket, fields.tool(tool, "traces"))] += 1
        for key, value in summary.tags.items():
            counters[(bucket, fields.tag_key(key))] += 1
            values = keys.tag_values(summary.experiment_id, resolution, start, key)
            counters[(values, tags[key])] += 1
            _expire(update, values, resolution, start, policy)
            distinct = keys.tag_distinct(summary.experiment_id, resolution, start, key)
            update.distinct.setdefault(distinct, set()).add(value)
            _expire(update, distinct, resolution, start, policy)
        for span in spans:
            _add_span(experiment, span, resolution, start, policy)
        occurrences = keys.occurrences(summary.experiment_id, resolution, start)
        _expire(update, occurrences, resolution, start, policy)
        for dim in dims:
            counters[(occurrences, dim)] += 1
        if resolution in policy.cooccurrence:
            experiment.dimension_sets.setdefault((resolution, start), []).append(dims)
            prefix = keys.partners(summary.experiment_id, resolution, start, "")
            for dim in dims:
                _expire(update, prefix + dim, resolution, start, policy)


def _add_span(
    experiment: _Experiment, span: SpanRecord, resolution: Resolution, start: int, policy: Policy
) -> None:
    update = experiment.update
    bucket = keys.bucket(span.experiment_id, resolution, start)
    counters = update.counters
    counters[(bucket, fields.SPANS)] += 1
    counters[(bucket, fields.span_type(span.span_type))] += 1
    duration = span.duration_ms
    if span.tool_name is not None:
        counters[(bucket, fields.tool(span.tool_name, "calls"))] += 1
        if span.status == "ERROR":
            counters[(bucket, fields.tool(span.tool_name, "errors"))] += 1
        update.add_sum(bucket, fields.tool(span.tool_name, "latency_sum"), duration)
        metric = f"tool:{span.tool_name}"
        _digest(experiment, span.experiment_id, resolution, start, metric, duration, policy)
    if span.model is not None:
        counters[(bucket, fields.model(span.model, "calls"))] += 1
        counters[(bucket, fields.model(span.model, "input_tokens"))] += span.input_tokens or 0
        counters[(bucket, fields.model(span.model, "output_tokens"))] += span.output_tokens or 0
        update.add_sum(bucket, fields.model(span.model, "latency_sum"), duration)
        metric = f"model:{span.model}"
        _digest(experiment, span.experiment_id, resolution, start, metric, duration, policy)


def _digest(
    experiment: _Experiment,
    experiment_id: str,
    resolution: Resolution,
    start: int,
    metric: str,
    value: float,
    policy: Policy,
) -> None:
    key = keys.digests(experiment_id, resolution, start, metric)
    experiment.digest_values.setdefault((key, str(experiment.update.partition)), []).append(value)
    _expire(experiment.update, key, resolution, start, policy)


def _expire(update: Update, key: str, resolution: Resolution, start: int, policy: Policy) -> None:
    update.expire_at_ms[key] = start + WIDTH_MS[resolution] + policy.ttl_ms[resolution]


def _finish(experiment: _Experiment, store: AggregateStore) -> None:
    """Merge new values into the partition's digests; spread pair counts into partner hashes."""
    update = experiment.update
    locations = list(experiment.digest_values)
    for location, current in zip(locations, store.read_blob_fields(locations), strict=True):
        digest = sketch.load(current) if current is not None else sketch.new_digest()
        digest.batch_update(experiment.digest_values[location])
        update.blobs[location] = sketch.dump(digest)
    for (resolution, start), sets in experiment.dimension_sets.items():
        prefix = keys.partners(update.experiment_id, resolution, start, "")
        for (first, second), count in co_occurrences(sets).items():
            update.counters[(prefix + first, second)] += count


def co_occurrences(dimension_sets: list[list[str]]) -> dict[tuple[str, str], int]:
    """Ordered pairs of distinct dimensions → how many of the sets hold both.

    Counted as the Gram matrix of the trace x dimension incidence matrix (one BLAS product
    instead of ~k² dictionary updates per trace); counts stay exact in float64 below 2^53.
    """
    names = sorted({dim for dims in dimension_sets for dim in dims})
    if len(names) < 2:
        return {}
    column = {name: index for index, name in enumerate(names)}
    incidence = np.zeros((len(dimension_sets), len(names)))
    for row, dims in enumerate(dimension_sets):
        incidence[row, [column[dim] for dim in dims]] = 1.0
    gram = incidence.T @ incidence
    np.fill_diagonal(gram, 0.0)
    firsts, seconds = np.nonzero(gram)
    return {
        (names[i], names[j]): int(gram[i, j])
        for i, j in zip(firsts.tolist(), seconds.tolist(), strict=True)
    }
