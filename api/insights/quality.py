"""``assessments``: which feedback exists in a range, and its metrics, from exact value counts
(an overwritten assessment moves its count, so values are counted, not sketched)."""

import json
from collections import Counter

import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.aggregates import Aggregates, total
from trace_insights.api.context import Context
from trace_insights.api.errors import not_found
from trace_insights.api.schemas import (
    AssessmentDiscoveryResponse,
    AssessmentInfo,
    AssessmentMetricsRequest,
    AssessmentMetricsResponse,
    FailurePoint,
    FailureStats,
    InsightsRequest,
    NumericPoint,
    NumericStats,
    StringPoint,
    StringStats,
    ValueCount,
)
from trace_insights.core import dimensions, keys
from trace_insights.core.assessments import Value, is_failure, value_type
from trace_insights.truth.models import Assessment

router = APIRouter(prefix="/assessments")
TOP_VALUES = 10


@router.post("/discovery", response_model=AssessmentDiscoveryResponse)
def discovery(body: InsightsRequest, request: Request) -> AssessmentDiscoveryResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False)
    names = assessment_names(aggregates)
    sources = _sources(context, body.experiment_ids, names)
    data = []
    for name in names:
        counts = _values(aggregates, name)[0]
        if not counts:
            continue
        data.append(
            AssessmentInfo(
                assessment_name=name,
                assessment_type=value_type(list(counts)),
                sources=sources.get(name, []),
                trace_count=sum(counts.values()),
            )
        )
    return AssessmentDiscoveryResponse(data=data, meta=context.meta(aggregates))


@router.post("/metrics", response_model=AssessmentMetricsResponse)
def metrics(body: AssessmentMetricsRequest, request: Request) -> AssessmentMetricsResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body)
    per = _values(aggregates, body.assessment_name)
    summary = _merge(per)
    if not summary:
        raise not_found(f"no assessment named {body.assessment_name!r} in the range")
    kind = value_type(list(summary))
    labels = aggregates.window.labels
    stats: FailureStats | NumericStats | StringStats
    series: list[FailurePoint] | list[NumericPoint] | list[StringPoint]
    if kind in ("pass-fail", "boolean"):
        stats, series = (
            _failures(summary),
            [
                FailurePoint(time_bucket=t, **_failures(c).model_dump())
                for t, c in zip(labels, per, strict=True)
            ],
        )
    elif kind == "numeric":
        stats, series = (
            _numbers(summary),
            [
                NumericPoint(time_bucket=t, **_numbers(c).model_dump())
                for t, c in zip(labels, per, strict=True)
            ],
        )
    else:
        stats, series = (
            _strings(summary),
            [
                StringPoint(time_bucket=t, **_strings(c).model_dump())
                for t, c in zip(labels, per, strict=True)
            ],
        )
    return AssessmentMetricsResponse(
        assessment_name=body.assessment_name,
        assessment_type=kind,
        summary=stats,
        time_series=series,
        meta=context.meta(aggregates),
    )


def assessment_names(aggregates: Aggregates) -> list[str]:
    """Assessment names with a dimension in the range (``assessment.<name>=<value>``)."""
    occurrences = total(aggregates.counters(keys.occurrences))
    names = set()
    for dim, n in occurrences.items():
        split = dimensions.split(dim)
        if n > 0 and split is not None and split[0] is dimensions.ASSESSMENTS:
            names.add(dimensions.ASSESSMENTS.parameter(split[1]))
    return sorted(names)


def _values(aggregates: Aggregates, name: str) -> list[Counter[Value]]:
    """Per period: value → assessments holding it now (zero counts dropped)."""
    per = aggregates.counters(lambda e, r, s: keys.assessment_values(e, r, s, name))
    return [Counter({json.loads(k): int(v) for k, v in counts.items() if v > 0}) for counts in per]


def _merge(per: list[Counter[Value]]) -> Counter[Value]:
    out: Counter[Value] = Counter()
    for counts in per:
        out.update(counts)
    return out


def _sources(context: Context, experiment_ids: list[str], names: list[str]) -> dict[str, list[str]]:
    if not names:
        return {}
    query = (
        sa.select(Assessment.name, Assessment.source_type)
        .where(
            Assessment.experiment_id.in_(experiment_ids),
            Assessment.name.in_(names),
            Assessment.counted(),
        )
        .group_by(Assessment.name, Assessment.source_type)
    )
    out: dict[str, list[str]] = {}
    with context.engine.connect() as connection:
        for row in connection.execute(query):
            out.setdefault(row.name, []).append(row.source_type)
    return {name: sorted(found) for name, found in out.items()}


def _failures(counts: Counter[Value]) -> FailureStats:
    n = sum(counts.values())
    failed = sum(c for v, c in counts.items() if is_failure(v))
    return FailureStats(
        total_count=n, failure_count=failed, failure_rate=100.0 * failed / n if n else 0.0
    )


def _numbers(counts: Counter[Value]) -> NumericStats:
    n = sum(counts.values())
    if not n:
        return NumericStats(
            total_count=0,
            p50_value=None,
            p90_value=None,
            p99_value=None,
            avg_value=None,
            min_value=None,
            max_value=None,
        )
    values = np.array(sorted(float(v) for v in counts), dtype=float)
    weights = np.array([counts[v] for v in sorted(counts, key=float)], dtype=float)
    p50, p90, p99 = (weighted_percentile(values, weights, q) for q in (0.5, 0.9, 0.99))
    return NumericStats(
        total_count=n,
        p50_value=p50,
        p90_value=p90,
        p99_value=p99,
        avg_value=float((values * weights).sum() / n),
        min_value=float(values[0]),
        max_value=float(values[-1]),
    )


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """numpy's default (linear) percentile of the sample where each value repeats ``weight``
    times, without expanding it."""
    n = weights.sum()
    position = q * (n - 1)
    below, fraction = int(np.floor(position)), position - np.floor(position)
    ends = np.cumsum(weights)  # value i covers ranks [ends[i] - w, ends[i])
    low = values[np.searchsorted(ends, below, side="right")]
    high = values[np.searchsorted(ends, min(below + 1, n - 1), side="right")]
    return float(low + (high - low) * fraction)


def _strings(counts: Counter[Value]) -> StringStats:
    n = sum(counts.values())
    top = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:TOP_VALUES]
    return StringStats(
        total_count=n,
        unique_values=len(counts),
        top_values=[
            ValueCount(
                value=v if isinstance(v, str) else json.dumps(v), count=c, percentage=100.0 * c / n
            )
            for v, c in top
        ],
    )
