"""``traffic-cost``: volume, latency, errors, tokens and cost.

When the stored buckets cannot place the edges between periods (a local midnight inside a
UTC day whose hours have expired), these answer from the finalized traces instead, exactly
(``meta.source = "store"``).
"""

from collections.abc import Sequence
from fractions import Fraction
from typing import TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel

from trace_insights.api.aggregates import Aggregates, Figures, combined, total
from trace_insights.api.context import Context
from trace_insights.api.figures import (
    cost_figures,
    cost_meta,
    error_stats,
    latency_stats,
    model_costs,
    provider_costs,
    token_counts,
    volume_counts,
)
from trace_insights.api.schemas import (
    CostPoint,
    CostResponse,
    ErrorPoint,
    ErrorsResponse,
    InsightsRequest,
    LatencyPoint,
    LatencyResponse,
    Meta,
    TokenPoint,
    TokensResponse,
    VolumePoint,
    VolumeResponse,
)
from trace_insights.core import keys, money
from trace_insights.core.keys import fields
from trace_insights.truth import period_stats
from trace_insights.truth.period_stats import PeriodStats

router = APIRouter(prefix="/traffic-cost")
P = TypeVar("P", bound=BaseModel)


def _context(request: Request) -> Context:
    return request.app.state.context


_VOLUME = [fields.TRACES, fields.status("OK"), fields.status("ERROR")]
_LATENCY = [fields.TRACES, fields.LATENCY_SUM]
_TOKENS = [fields.INPUT_TOKENS, fields.OUTPUT_TOKENS]
_COST = [fields.COST, fields.COST + money.HI, fields.UNPRICED_CALLS]


def _latency_key(experiment: str, resolution, start: int) -> str:
    return keys.digests(experiment, resolution, start, "latency")


@router.post("/volume", response_model=VolumeResponse)
def volume(body: InsightsRequest, request: Request) -> VolumeResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    if aggregates.window.moved:
        per, meta = _exact_counters(context, aggregates)
    else:
        per, meta = aggregates.counters(keys.bucket, _VOLUME), context.meta(aggregates)
    return VolumeResponse(
        summary=volume_counts(total(per)),
        time_series=_series(aggregates, VolumePoint, [volume_counts(c) for c in per]),
        meta=meta,
    )


@router.post("/latency", response_model=LatencyResponse)
def latency(body: InsightsRequest, request: Request) -> LatencyResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    if aggregates.window.moved:
        periods, whole = _exact(context, aggregates)
        stats = [latency_stats(_counter(p), _Exact(p)) for p in periods]
        summary, meta = (
            latency_stats(_counter(whole), _Exact(whole)),
            _store_meta(context, aggregates),
        )
    else:
        per = aggregates.counters(keys.bucket, _LATENCY)
        digests = aggregates.digests(_latency_key)
        stats = [latency_stats(c, d) for c, d in zip(per, digests, strict=True)]
        summary, meta = latency_stats(total(per), combined(digests)), context.meta(aggregates)
    return LatencyResponse(
        summary=summary, time_series=_series(aggregates, LatencyPoint, stats), meta=meta
    )


@router.post("/errors", response_model=ErrorsResponse)
def errors(body: InsightsRequest, request: Request) -> ErrorsResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    if aggregates.window.moved:
        per, meta = _exact_counters(context, aggregates)
    else:
        per, meta = aggregates.counters(keys.bucket, _VOLUME), context.meta(aggregates)
    return ErrorsResponse(
        summary=error_stats(total(per)),
        time_series=_series(aggregates, ErrorPoint, [error_stats(c) for c in per]),
        meta=meta,
    )


@router.post("/tokens", response_model=TokensResponse)
def tokens(body: InsightsRequest, request: Request) -> TokensResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    per, by_model, meta = _spend(context, aggregates, body, _TOKENS)
    models = model_costs(by_model)
    return TokensResponse(
        summary=token_counts(total(per)),
        time_series=_series(aggregates, TokenPoint, [token_counts(c) for c in per]),
        models=models,
        meta=cost_meta(meta, models),
    )


@router.post("/cost", response_model=CostResponse)
def cost(body: InsightsRequest, request: Request) -> CostResponse:
    """What the calls cost: in total, per bucket, per model and per provider (USD)."""
    context = _context(request)
    aggregates = context.aggregates(body)
    per, whole, meta = _spend(context, aggregates, body, _COST)
    models = model_costs(whole)
    return CostResponse(
        summary=cost_figures(total(per)),
        time_series=_series(aggregates, CostPoint, [cost_figures(c) for c in per]),
        models=models,
        providers=provider_costs(whole),
        meta=cost_meta(meta, models),
    )


def _spend(
    context: Context, aggregates: Aggregates, body: InsightsRequest, names: list[str]
) -> tuple[list[Figures], Figures, Meta]:
    """Per period the ``names`` figures, and over the range the per-model and per-provider
    ones, from the stored buckets or (edges they cannot place) from the source of truth."""
    if not aggregates.window.moved:
        whole = context.over(body.experiment_ids, context.window(body, series=False))
        [by_subject] = whole.counters(keys.bucket)
        return aggregates.counters(keys.bucket, names), by_subject, context.meta(aggregates)
    per, meta = _exact_counters(context, aggregates)
    periods = aggregates.window.periods
    with context.engine.connect() as connection:
        uses = period_stats.model_uses(
            connection, body.experiment_ids, periods[0][0], periods[-1][1]
        )
    by_subject = Figures()
    for use in uses:
        for name in (fields.model(use.model, ""), fields.provider(use.provider or "", "")):
            by_subject[name + "calls"] += use.calls
            by_subject[name + "unpriced_calls"] += use.unpriced_calls
            by_subject[name + "cost"] += use.cost  # one counter holds it: money.read adds both
        by_subject[fields.model(use.model, "input_tokens")] += use.input_tokens
        by_subject[fields.model(use.model, "output_tokens")] += use.output_tokens
    return per, by_subject, meta


def _exact(context: Context, aggregates: Aggregates) -> tuple[list[PeriodStats], PeriodStats]:
    """Each period's figures and the whole range's, from the finalized traces."""
    periods = aggregates.window.periods
    with context.engine.connect() as connection:
        per = period_stats.period_stats(connection, aggregates.experiment_ids, periods)
        [whole] = period_stats.period_stats(
            connection, aggregates.experiment_ids, [(periods[0][0], periods[-1][1])]
        )
    return per, whole


def _exact_counters(context: Context, aggregates: Aggregates) -> tuple[list[Figures], Meta]:
    periods = aggregates.window.periods
    with context.engine.connect() as connection:
        per = period_stats.period_stats(connection, aggregates.experiment_ids, periods)
    return [_counter(p) for p in per], _store_meta(context, aggregates)


def _counter(stats: PeriodStats) -> Figures:
    """A period's figures under the names the stored buckets use."""
    return Figures(
        {
            fields.TRACES: stats.traces,
            fields.status("OK"): stats.ok,
            fields.status("ERROR"): stats.errors,
            fields.LATENCY_SUM: stats.latency_sum,
            fields.INPUT_TOKENS: stats.input_tokens,
            fields.OUTPUT_TOKENS: stats.output_tokens,
            fields.UNPRICED_CALLS: stats.unpriced_calls,
            fields.COST: stats.cost,
        }
    )


def _store_meta(context: Context, aggregates: Aggregates) -> Meta:
    """Exact to the millisecond: the range and periods as asked."""
    periods = aggregates.window.periods
    meta = context.meta(aggregates, source="store")
    return meta.model_copy(
        update={"edges": "minute", "start_time": periods[0][0], "end_time": periods[-1][1]}
    )


class _Exact:
    def __init__(self, stats: PeriodStats) -> None:
        self._stats = stats

    def quantile(self, q: float) -> float:
        return self._stats.quantiles[Fraction(q).limit_denominator(1000)]

    def min(self) -> float:
        return float(self._stats.latency_min or 0)

    def max(self) -> float:
        return float(self._stats.latency_max or 0)

    def is_empty(self) -> bool:
        return not self._stats.traces


def _series(aggregates: Aggregates, point: type[P], values: Sequence[BaseModel]) -> list[P]:
    """Each period's values as a point of the series, labelled with the period's start (as
    asked when answered exactly, from the traces)."""
    window = aggregates.window
    return [
        point(time_bucket=label, **value.model_dump())
        for label, value in zip(
            window.asked if window.moved else window.labels, values, strict=True
        )
    ]
