"""What the traces a batch touched add to the aggregates: one ``Update`` per experiment.

Every trace is bucketed by its event time (its first span's start) at each resolution. A
trace the batch touched (finalized, reached by late spans, or assessed) moves from its state at
the experiment's fence to its state at the batch's end (``truth/history.py``): the old state's
counts go, the new state's come — status, latency, tokens, tags, tools, dimensions, pairs and
span counts alike. Counters and sums move exactly. A t-digest cannot take a value back, so a
move that would (a latency that changed, a trace that changed buckets) adds the new values and
marks the bucket's digest *dirty*; ``refresh.py`` recomputes dirty digests from PostgreSQL.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from trace_insights.aggregator.truth.history import TraceState
from trace_insights.aggregator.truth.writer import Owed
from trace_insights.core import dimensions, keys, money, sketch
from trace_insights.core.assessments import value_key
from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start
from trace_insights.core.keys import fields
from trace_insights.core.records import SpanRecord
from trace_insights.stores.base import NO_FENCE, AggregateStore, Update

FINEST = Resolution.MINUTE  # counted here; coarser buckets are sums of finer ones
LATENCY = "latency"  # the digest of trace latencies; span digests are tool:<name>, model:<name>


@dataclass(frozen=True)
class Policy:
    """What is kept, and for how long."""

    ttl_ms: dict[Resolution, int]
    cooccurrence: tuple[Resolution, ...] = (Resolution.HOUR, Resolution.DAY)
    tag_value_cap: int = 100
    tool_name_cap: int = 200


@dataclass
class _Bucket:
    """Everything one batch changes in one experiment's bucket, before it becomes key strings."""

    counts: Counter[str] = field(default_factory=Counter)
    sums: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    digests: defaultdict[str, list[float]] = field(  # metric → new values
        default_factory=lambda: defaultdict(list)
    )
    dirty: set[str] = field(default_factory=set)  # metrics whose digest holds a stale value
    tag_values: defaultdict[str, Counter[str]] = field(  # key → capped value → n
        default_factory=lambda: defaultdict(Counter)
    )
    tag_distinct: defaultdict[str, set[str]] = field(  # key → raw values
        default_factory=lambda: defaultdict(set)
    )
    tag_cost: defaultdict[str, Counter[str]] = field(  # key → value → cost
        default_factory=lambda: defaultdict(Counter)
    )
    occurrences: Counter[str] = field(default_factory=Counter)
    dimension_sets: list[tuple[list[str], int]] = field(default_factory=list)  # (dims, sign)
    assessment_values: defaultdict[str, Counter[str]] = field(  # name → value → n
        default_factory=lambda: defaultdict(Counter)
    )


def span_metric(span: SpanRecord, counted: dimensions.CountedAs) -> list[str]:
    """The span digests a span's duration goes to (none for a tool past the cap: its calls are
    counted, their percentiles not)."""
    out = []
    if span.tool_name is not None and (tool := counted.tool(span.tool_name)) != dimensions.OTHER:
        out.append(f"tool:{tool}")
    if span.model is not None:
        out.append(f"model:{span.model}")
    return out


def _add_spans(
    bucket: _Bucket, spans: list[SpanRecord], sign: int, counted: dimensions.CountedAs
) -> None:
    """The span-level counts and sums of ``spans``, added (sign 1) or taken out (sign -1)."""
    counts, sums = bucket.counts, bucket.sums
    for span in spans:
        counts[fields.SPANS] += sign
        counts[fields.span_type(span.span_type)] += sign
        if span.tool_name is not None:
            tool = counted.tool(span.tool_name)
            counts[fields.tool(tool, "calls")] += sign
            if span.status == "ERROR":
                counts[fields.tool(tool, "errors")] += sign
            sums[fields.tool(tool, "latency_sum")] += sign * span.duration_ms
        if span.model is not None:
            counts[fields.model(span.model, "calls")] += sign
            counts[fields.model(span.model, "input_tokens")] += sign * (span.input_tokens or 0)
            counts[fields.model(span.model, "output_tokens")] += sign * (span.output_tokens or 0)
            sums[fields.model(span.model, "latency_sum")] += sign * span.duration_ms
            provider = span.provider or ""
            counts[fields.provider(provider, "calls")] += sign
            if span.cost is not None:
                money.add(counts, fields.model(span.model, "cost"), span.cost, sign)
                money.add(counts, fields.provider(provider, "cost"), span.cost, sign)
            elif span.needs_price:
                counts[fields.UNPRICED_CALLS] += sign
                counts[fields.model(span.model, "unpriced_calls")] += sign
                counts[fields.provider(provider, "unpriced_calls")] += sign
        if span.cost is not None:
            money.add(counts, fields.COST, span.cost, sign)


class _Experiment:
    def __init__(self, experiment_id: str, partition: int) -> None:
        self.experiment_id = experiment_id
        self.partition = partition
        self.buckets: dict[tuple[Resolution, int], _Bucket] = {}
        self.watermark_ms = -1  # the latest event time this update applies

    def bucket(self, resolution: Resolution, timestamp_ms: int) -> _Bucket:
        start = bucket_start(timestamp_ms, resolution)
        found = self.buckets.get((resolution, start))
        if found is None:
            found = self.buckets[(resolution, start)] = _Bucket()
        return found


class Admitted(dimensions.CountedAs):
    """Which tag values and tool names are counted by name: the first ``tag_value_cap`` values
    of each tag key and the first ``tool_name_cap`` tool names, per experiment; decided by the
    store, atomically, the same way for live ingestion and rebuilds. The rest are OTHER."""

    def __init__(self, store: AggregateStore, experiment_id: str, policy: Policy) -> None:
        self._store = store
        self._experiment = experiment_id
        self._policy = policy
        self._tags: dict[tuple[str, str], bool] = {}
        self._tools: dict[str, bool] = {}

    def decide(self, tags: set[tuple[str, str]], tools: set[str]) -> None:
        """Ask the store about every tag value and tool name not decided yet, in one trip."""
        pending_tags = sorted(tags - self._tags.keys())
        pending_tools = sorted(tools - self._tools.keys())
        e, policy = self._experiment, self._policy
        entries = [(keys.tag_registry(e, k), v, policy.tag_value_cap) for k, v in pending_tags]
        entries += [(keys.tool_registry(e), tool, policy.tool_name_cap) for tool in pending_tools]
        decisions = self._store.admit(entries)
        self._tags.update(zip(pending_tags, decisions[: len(pending_tags)], strict=True))
        self._tools.update(zip(pending_tools, decisions[len(pending_tags) :], strict=True))

    def tag(self, key: str, value: str) -> str:
        return value if self._tags[(key, value)] else dimensions.OTHER

    def tool(self, name: str) -> str:
        return name if self._tools[name] else dimensions.OTHER


Move = tuple[TraceState | None, TraceState]  # a trace's state at the fence, and now


def build_updates(
    owed: Owed, partition: int, store: AggregateStore, policy: Policy
) -> list[Update]:
    """Live path: one update per experiment with a trace whose state changed past its fence,
    carrying the fence it was computed against and the new one (the batch's end)."""
    fences: dict[str, int] = {}
    moves: list[Move] = []
    for history in owed.histories:
        e = history.experiment_id
        if e not in fences:
            fences[e] = store.fences(e).get(partition, NO_FENCE)
        since = max(fences[e], owed.after)  # nothing changed between the fence and the batch
        if history.changed_in(since, owed.end):
            now = history.at(owed.end)
            assert now is not None  # finalized by the batch's end
            moves.append((history.at(since), now))
    updates = accumulate(moves, partition, store, policy)
    for update in updates:
        update.expected_fence = fences[update.experiment_id]
        update.fence = owed.end
    return updates


def accumulate(
    moves: list[Move], partition: int, store: AggregateStore, policy: Policy
) -> list[Update]:
    """The deltas of ``moves``, one update per experiment; fences are left to the caller."""
    experiments: dict[str, _Experiment] = {}
    seen: dict[str, tuple[set[tuple[str, str]], set[str]]] = {}  # tag values, tool names
    for before, after in moves:
        tags, tools = seen.setdefault(after.summary.experiment_id, (set(), set()))
        for state in (before, after):
            if state is not None:
                tags.update(state.summary.tags.items())
                tools.update(span.tool_name for span in state.spans if span.tool_name is not None)
    registries = {}
    for experiment_id, (tags, tools) in seen.items():
        registries[experiment_id] = Admitted(store, experiment_id, policy)
        registries[experiment_id].decide(tags, tools)
    for before, after in moves:
        e = after.summary.experiment_id
        experiment = experiments.get(e)
        if experiment is None:
            experiment = experiments[e] = _Experiment(e, partition)
        if before is not None:
            _count(experiment, before, -1, registries[e])
        _count(experiment, after, 1, registries[e])
        _digests(experiment, before, after, registries[e])
    for experiment in experiments.values():
        _roll_up(experiment)
    return [_update(experiment, store, policy) for experiment in experiments.values()]


def _count(experiment: _Experiment, state: TraceState, sign: int, counted: Admitted) -> None:
    """A trace state's counts, added (sign 1) or taken out (sign -1), in its finest bucket:
    every coarser bucket's counts are the sum of its finer ones' (``_roll_up``)."""
    summary, spans = state.summary, state.spans
    tags = {key: counted.tag(key, value) for key, value in summary.tags.items()}
    dims = dimensions.of_trace(summary, spans, counted)
    bucket = experiment.bucket(FINEST, summary.timestamp_ms)
    _add_spans(bucket, spans, sign, counted)
    counts = bucket.counts
    counts[fields.TRACES] += sign
    counts[fields.LATE_SPANS] += sign * state.late
    counts[fields.status(summary.status)] += sign
    counts[fields.INPUT_TOKENS] += sign * summary.input_tokens
    counts[fields.OUTPUT_TOKENS] += sign * summary.output_tokens
    tools = {counted.tool(span.tool_name) for span in spans if span.tool_name is not None}
    for tool in tools:
        counts[fields.tool(tool, "traces")] += sign
    counts[fields.TOOL_TRACES] += sign * bool(tools)
    bucket.sums[fields.LATENCY_SUM] += sign * float(summary.execution_time_ms)
    experiment.watermark_ms = max(experiment.watermark_ms, summary.timestamp_ms)
    for key, value in summary.tags.items():
        counts[fields.tag_key(key)] += sign
        bucket.tag_values[key][tags[key]] += sign
        if sign > 0:  # a HyperLogLog cannot take a value back (distinct counts, estimated)
            bucket.tag_distinct[key].add(value)
        if summary.cost or summary.unpriced_calls:
            spent = bucket.tag_cost[key]
            money.add(spent, tags[key], summary.cost or 0, sign)
            spent[tags[key] + keys.UNPRICED] += sign * summary.unpriced_calls
    occurrences = bucket.occurrences
    for dim in dims:
        occurrences[dim] += sign
    for name, value in summary.assessments:
        bucket.assessment_values[name][value_key(value)] += sign
    bucket.dimension_sets.append((list(dims), sign))


def _roll_up(experiment: _Experiment) -> None:
    """Add each finest bucket's counts to the coarser buckets holding it."""
    finest = [(start, b) for (r, start), b in experiment.buckets.items() if r == FINEST]
    for resolution in Resolution:
        if resolution == FINEST:
            continue
        for start, fine in finest:
            coarse = experiment.bucket(resolution, start)
            coarse.counts.update(fine.counts)
            for name, total in fine.sums.items():
                coarse.sums[name] += total
            for key, counted in fine.tag_values.items():
                coarse.tag_values[key].update(counted)
            for key, raw in fine.tag_distinct.items():
                coarse.tag_distinct[key].update(raw)
            for key, spent in fine.tag_cost.items():
                coarse.tag_cost[key].update(spent)
            coarse.occurrences.update(fine.occurrences)
            for name, counted in fine.assessment_values.items():
                coarse.assessment_values[name].update(counted)
            coarse.dimension_sets.extend(fine.dimension_sets)


def _digests(
    experiment: _Experiment, before: TraceState | None, after: TraceState, counted: Admitted
) -> None:
    """What the digests gain; where a value would have to go, the bucket is marked dirty."""
    latency = float(after.summary.execution_time_ms)
    for resolution in Resolution:
        bucket = experiment.bucket(resolution, after.summary.timestamp_ms)
        old = None if before is None else experiment.bucket(resolution, before.summary.timestamp_ms)
        if before is None or old is not bucket:
            if before is not None and old is not None:  # changed buckets: the old keeps values
                old.dirty.add(LATENCY)
                old.dirty.update(m for span in before.spans for m in span_metric(span, counted))
            new_spans = after.spans
            bucket.digests[LATENCY].append(latency)
        else:
            seen = {span.span_id for span in before.spans}
            new_spans = [span for span in after.spans if span.span_id not in seen]
            if before.summary.execution_time_ms != after.summary.execution_time_ms:
                bucket.digests[LATENCY].append(latency)
                bucket.dirty.add(LATENCY)
        for span in new_spans:
            for metric in span_metric(span, counted):
                bucket.digests[metric].append(span.duration_ms)


def dirty_member(metric: str, resolution: str, start_ms: int, partition: int) -> str:
    """A dirty digest, as a member of the experiment's dirty set."""
    return json.dumps([metric, resolution, start_ms, partition])


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
            if total:
                update.add_sum(key, name, total)
        for metric, values in bucket.digests.items():
            digest_key = keys.digests(e, resolution, start, metric)
            digest_values[(digest_key, partition)] = values
            update.expire_at_ms[digest_key] = expire_at
        update.dirty.update(
            dirty_member(metric, resolution.value, start, experiment.partition)
            for metric in bucket.dirty
        )
        for tag, counted in bucket.tag_values.items():
            update.count(keys.tag_values(e, resolution, start, tag), counted, expire_at)
        for tag, costs in bucket.tag_cost.items():
            update.count(keys.tag_cost(e, resolution, start, tag), costs, expire_at)
        for tag, raw in bucket.tag_distinct.items():
            distinct_key = keys.tag_distinct(e, resolution, start, tag)
            update.distinct.setdefault(distinct_key, set()).update(raw)
            update.expire_at_ms[distinct_key] = expire_at
        if bucket.occurrences:
            update.count(keys.occurrences(e, resolution, start), bucket.occurrences, expire_at)
        for name, counted in bucket.assessment_values.items():
            update.count(keys.assessment_values(e, resolution, start, name), counted, expire_at)
        if bucket.dimension_sets and resolution in policy.cooccurrence:
            pairs, hashes = co_occurrences(
                bucket.dimension_sets, keys.partners(e, resolution, start, "")
            )
            update.counters.update(pairs)
            update.expire_at_ms.update(dict.fromkeys(hashes, expire_at))
    update.add_max(keys.meta(e), fields.WATERMARK, experiment.watermark_ms)
    update.changed = sorted((resolution.value, start) for resolution, start in experiment.buckets)
    locations = list(digest_values)
    for location, current in zip(locations, store.read_blob_fields(locations), strict=True):
        digest = sketch.load(current) if current is not None else sketch.new_digest()
        digest.batch_update(digest_values[location])
        update.blobs[location] = sketch.dump(digest)
    return update


def co_occurrences(
    dimension_sets: list[tuple[list[str], int]], prefix: str
) -> tuple[dict[tuple[str, str], int], list[str]]:
    """(partners hash of the first, second) of ordered pairs of distinct dimensions → the
    signed number of sets holding both (a set taken out counts -1), pairs that cancel out left
    out; and the partners hashes written (``prefix`` + a dimension).

    Counted as the weighted Gram matrix of the trace x dimension incidence matrix (one BLAS
    product instead of ~k² dictionary updates per trace); exact in float64 below 2^53. The
    pairs are built from the matrix's indexes in one pass, each hash name made once.
    """
    names = sorted({dim for dims, _ in dimension_sets for dim in dims})
    if len(names) < 2:
        return {}, []
    column = {name: index for index, name in enumerate(names)}
    rows = np.repeat(np.arange(len(dimension_sets)), [len(dims) for dims, _ in dimension_sets])
    incidence = np.zeros((len(dimension_sets), len(names)))
    incidence[rows, [column[dim] for dims, _ in dimension_sets for dim in dims]] = 1.0
    weights = np.fromiter((sign for _, sign in dimension_sets), float, len(dimension_sets))
    gram = (incidence * weights[:, None]).T @ incidence
    np.fill_diagonal(gram, 0.0)
    firsts, seconds = np.nonzero(gram)
    counts = gram[firsts, seconds].astype(np.int64).tolist()
    hashes = [prefix + name for name in names]
    pairs = zip(
        map(hashes.__getitem__, firsts.tolist()),
        map(names.__getitem__, seconds.tolist()),
        strict=True,
    )
    return dict(zip(pairs, counts, strict=True)), [hashes[i] for i in np.unique(firsts).tolist()]
