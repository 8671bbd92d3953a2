"""What finalized traces and late spans add to the aggregates: one ``Update`` per experiment.

Every trace is bucketed by its event time (its first span's start) at each resolution. Trace
facts (count, status, latency, tokens, tags, tools used, dimensions) are added once, at
finalization, with the span facts of the spans received by then; late spans add span facts.
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from trace_insights.aggregator.truth.assessments import Move
from trace_insights.aggregator.truth.writer import Owed
from trace_insights.core import dimensions, keys, sketch
from trace_insights.core.assessments import value_key
from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start
from trace_insights.core.keys import fields
from trace_insights.core.records import SpanRecord, TraceSummary
from trace_insights.stores.base import AggregateStore, Update


@dataclass(frozen=True)
class Policy:
    """What is kept, and for how long."""

    ttl_ms: dict[Resolution, int]
    cooccurrence: tuple[Resolution, ...] = (Resolution.HOUR, Resolution.DAY)
    tag_value_cap: int = 100


@dataclass
class _Bucket:
    """Everything one batch adds to one experiment's bucket, before it becomes key strings."""

    counts: Counter[str] = field(default_factory=Counter)
    sums: Counter[str] = field(default_factory=Counter)
    minimums: dict[str, float] = field(default_factory=dict)
    maximums: dict[str, float] = field(default_factory=dict)
    digests: dict[str, list[float]] = field(default_factory=dict)  # metric → new values
    tag_values: dict[str, Counter[str]] = field(default_factory=dict)  # key → capped value → n
    tag_distinct: dict[str, set[str]] = field(default_factory=dict)  # key → raw values
    occurrences: Counter[str] = field(default_factory=Counter)
    dimension_sets: list[list[str]] = field(default_factory=list)
    assessment_values: dict[str, Counter[str]] = field(default_factory=dict)  # name → value → n
    pair_deltas: Counter[tuple[str, str]] = field(default_factory=Counter)  # moved assessments


@dataclass
class _SpanFacts:
    """What a set of spans adds to a bucket, computed once and added to every resolution."""

    counts: Counter[str] = field(default_factory=Counter)
    sums: Counter[str] = field(default_factory=Counter)
    digests: dict[str, list[float]] = field(default_factory=dict)

    def add(self, span: SpanRecord) -> None:
        counts = self.counts
        counts[fields.SPANS] += 1
        counts[fields.span_type(span.span_type)] += 1
        duration = span.duration_ms
        if span.tool_name is not None:
            counts[fields.tool(span.tool_name, "calls")] += 1
            if span.status == "ERROR":
                counts[fields.tool(span.tool_name, "errors")] += 1
            self.sums[fields.tool(span.tool_name, "latency_sum")] += duration
            self.digests.setdefault(f"tool:{span.tool_name}", []).append(duration)
        if span.model is not None:
            counts[fields.model(span.model, "calls")] += 1
            counts[fields.model(span.model, "input_tokens")] += span.input_tokens or 0
            counts[fields.model(span.model, "output_tokens")] += span.output_tokens or 0
            self.sums[fields.model(span.model, "latency_sum")] += duration
            self.digests.setdefault(f"model:{span.model}", []).append(duration)

    def add_to(self, bucket: _Bucket) -> None:
        bucket.counts.update(self.counts)
        bucket.sums.update(self.sums)
        for metric, values in self.digests.items():
            bucket.digests.setdefault(metric, []).extend(values)


class _Experiment:
    def __init__(self, experiment_id: str, partition: int) -> None:
        self.experiment_id = experiment_id
        self.partition = partition
        self.buckets: dict[tuple[Resolution, int], _Bucket] = {}
        self.watermark_ms = -1  # the latest event time this update applies

    def buckets_of(self, timestamp_ms: int) -> list[tuple[Resolution, _Bucket]]:
        self.watermark_ms = max(self.watermark_ms, timestamp_ms)
        out = []
        for resolution in Resolution:
            start = bucket_start(timestamp_ms, resolution)
            bucket = self.buckets.get((resolution, start))
            if bucket is None:
                bucket = self.buckets[(resolution, start)] = _Bucket()
            out.append((resolution, bucket))
        return out


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
        moves=[item for item in owed.moves if item[0].offset > fence(item[0].experiment_id)],
    )
    updates = accumulate(pending, partition, store, policy)
    for update in updates:
        update.expected_fence = fences[update.experiment_id]
        update.fence = end_offset
    return updates


def accumulate(owed: Owed, partition: int, store: AggregateStore, policy: Policy) -> list[Update]:
    """The deltas of ``owed``, one update per experiment; fences are left to the caller."""
    experiments: dict[str, _Experiment] = {}
    registries: dict[str, TagRegistry] = {}
    tags_seen: dict[str, set[tuple[str, str]]] = {}
    for summary in [item[0] for item in owed.finalized] + [item[1] for item in owed.moves]:
        tags_seen.setdefault(summary.experiment_id, set()).update(summary.tags.items())
    for experiment_id, tags in tags_seen.items():
        registries[experiment_id] = TagRegistry(store, experiment_id, policy.tag_value_cap)
        registries[experiment_id].decide(tags)

    def target(experiment_id: str) -> _Experiment:
        if experiment_id not in experiments:
            experiments[experiment_id] = _Experiment(experiment_id, partition)
        return experiments[experiment_id]

    for summary, spans, _ in owed.finalized:
        _add_trace(
            target(summary.experiment_id), summary, spans, registries[summary.experiment_id], policy
        )
    for move, summary, spans in owed.moves:
        registry = registries[summary.experiment_id]
        _move(target(move.experiment_id), move, summary, spans, registry, policy)
    for span, _, timestamp_ms in owed.late:
        facts = _SpanFacts()
        facts.add(span)
        facts.counts[fields.LATE_SPANS] += 1
        for _, bucket in target(span.experiment_id).buckets_of(timestamp_ms):
            facts.add_to(bucket)
    return [_update(experiment, store, policy) for experiment in experiments.values()]


def _add_trace(
    experiment: _Experiment,
    summary: TraceSummary,
    spans: list[SpanRecord],
    registry: TagRegistry,
    policy: Policy,
) -> None:
    tags = {key: registry.value(key, value) for key, value in summary.tags.items()}
    dims = dimensions.of_trace(summary, spans, lambda key, value: tags[key])
    dims.update(dimensions.assessment(name, value) for name, value in summary.assessments)
    dims = sorted(dims)
    facts = _SpanFacts()
    for span in spans:
        facts.add(span)
    counts = facts.counts
    counts[fields.TRACES] += 1
    counts[fields.status(summary.status)] += 1
    counts[fields.INPUT_TOKENS] += summary.input_tokens
    counts[fields.OUTPUT_TOKENS] += summary.output_tokens
    for tool in {span.tool_name for span in spans if span.tool_name is not None}:
        counts[fields.tool(tool, "traces")] += 1
    for key in summary.tags:
        counts[fields.tag_key(key)] += 1
    latency = float(summary.execution_time_ms)
    facts.sums[fields.LATENCY_SUM] += latency
    facts.digests["latency"] = [latency]
    for resolution, bucket in experiment.buckets_of(summary.timestamp_ms):
        facts.add_to(bucket)
        if latency < bucket.minimums.get(fields.LATENCY_MIN, latency + 1):
            bucket.minimums[fields.LATENCY_MIN] = latency
        if latency > bucket.maximums.get(fields.LATENCY_MAX, latency - 1):
            bucket.maximums[fields.LATENCY_MAX] = latency
        for key, value in summary.tags.items():
            bucket.tag_values.setdefault(key, Counter())[tags[key]] += 1
            bucket.tag_distinct.setdefault(key, set()).add(value)
        bucket.occurrences.update(dims)
        for name, value in summary.assessments:
            bucket.assessment_values.setdefault(name, Counter())[value_key(value)] += 1
        if resolution in policy.cooccurrence:
            bucket.dimension_sets.append(dims)


def _move(
    experiment: _Experiment,
    move: Move,
    summary: TraceSummary,
    spans: list[SpanRecord],
    registry: TagRegistry,
    policy: Policy,
) -> None:
    """An assessment of a finalized trace changed: its old value's counts and pairs with the
    trace's dimensions go, the new value's come."""
    base = dimensions.of_trace(summary, spans, registry.value)
    changes = [] if move.value is None else [(move.name, move.value, 1)]
    if move.previous is not None:
        changes.append((move.previous[0], move.previous[1], -1))
    for resolution, bucket in experiment.buckets_of(summary.timestamp_ms):
        for name, value, sign in changes:
            bucket.assessment_values.setdefault(name, Counter())[value_key(value)] += sign
            dim = dimensions.assessment(name, value)
            bucket.occurrences[dim] += sign
            if resolution in policy.cooccurrence:
                for other in base:
                    bucket.pair_deltas[(dim, other)] += sign
                    bucket.pair_deltas[(other, dim)] += sign


def _update(experiment: _Experiment, store: AggregateStore, policy: Policy) -> Update:
    """Turn the buckets into keyed deltas; merge new values into the partition's digests."""
    e = experiment.experiment_id
    update = Update(e, experiment.partition, -1, -1)
    partition = str(experiment.partition)
    digest_values: dict[tuple[str, str], list[float]] = {}
    for (resolution, start), bucket in experiment.buckets.items():
        expire_at = start + WIDTH_MS[resolution] + policy.ttl_ms[resolution]
        key = keys.bucket(e, resolution, start)
        update.count(key, bucket.counts, expire_at)
        for name, total in bucket.sums.items():
            update.add_sum(key, name, total)
        for name, value in bucket.minimums.items():
            update.add_min(key, name, value)
        for name, value in bucket.maximums.items():
            update.add_max(key, name, value)
        for metric, values in bucket.digests.items():
            digest_key = keys.digests(e, resolution, start, metric)
            digest_values[(digest_key, partition)] = values
            update.expire_at_ms[digest_key] = expire_at
        for tag, values in bucket.tag_values.items():
            update.count(keys.tag_values(e, resolution, start, tag), values, expire_at)
            distinct_key = keys.tag_distinct(e, resolution, start, tag)
            update.distinct.setdefault(distinct_key, set()).update(bucket.tag_distinct[tag])
            update.expire_at_ms[distinct_key] = expire_at
        if bucket.occurrences:
            update.count(keys.occurrences(e, resolution, start), bucket.occurrences, expire_at)
        for name, values in bucket.assessment_values.items():
            update.count(keys.assessment_values(e, resolution, start, name), values, expire_at)
        if bucket.dimension_sets or bucket.pair_deltas:
            prefix = keys.partners(e, resolution, start, "")
            pairs = Counter(co_occurrences(bucket.dimension_sets))
            pairs.update(bucket.pair_deltas)
            for (first, second), count in pairs.items():
                update.counters[(prefix + first, second)] += count
                update.expire_at_ms[prefix + first] = expire_at
    update.add_max(keys.meta(e), fields.WATERMARK, experiment.watermark_ms)
    update.changed = sorted((resolution.value, start) for resolution, start in experiment.buckets)
    locations = list(digest_values)
    for location, current in zip(locations, store.read_blob_fields(locations), strict=True):
        digest = sketch.load(current) if current is not None else sketch.new_digest()
        digest.batch_update(digest_values[location])
        update.blobs[location] = sketch.dump(digest)
    return update


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
