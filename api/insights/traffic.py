"""``traffic-cost``: volume, latency, errors and tokens."""

from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from fastapi import APIRouter, Request
from fastdigest import TDigest
from pydantic import BaseModel

from trace_insights.api.aggregates import Aggregates, combined, total
from trace_insights.api.context import Context
from trace_insights.api.schemas import (
    ErrorPoint,
    ErrorsResponse,
    ErrorStats,
    InsightsRequest,
    LatencyPoint,
    LatencyResponse,
    LatencyStats,
    ModelTokens,
    TokenCounts,
    TokenPoint,
    TokensResponse,
    VolumeCounts,
    VolumePoint,
    VolumeResponse,
)
from trace_insights.core import keys
from trace_insights.core.keys import fields

router = APIRouter(prefix="/traffic-cost")
P = TypeVar("P", bound=BaseModel)


def _context(request: Request) -> Context:
    return request.app.state.context


_VOLUME = [fields.TRACES, fields.status("OK"), fields.status("ERROR")]
_LATENCY = [fields.TRACES, fields.LATENCY_SUM]
_TOKENS = [fields.INPUT_TOKENS, fields.OUTPUT_TOKENS]


def _latency_key(experiment: str, resolution, start: int) -> str:  # type: ignore[no-untyped-def]
    return keys.digests(experiment, resolution, start, "latency")


@router.post("/volume", response_model=VolumeResponse)
def volume(body: InsightsRequest, request: Request) -> VolumeResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    per = aggregates.counters(keys.bucket, _VOLUME)
    return VolumeResponse(
        summary=volume_counts(total(per)),
        time_series=_series(aggregates, VolumePoint, [volume_counts(c) for c in per]),
        meta=context.meta(aggregates),
    )


@router.post("/latency", response_model=LatencyResponse)
def latency(body: InsightsRequest, request: Request) -> LatencyResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    per = aggregates.counters(keys.bucket, _LATENCY)
    digests = aggregates.digests(_latency_key)
    stats = [latency_stats(c, d) for c, d in zip(per, digests, strict=True)]
    return LatencyResponse(
        summary=latency_stats(total(per), combined(digests)),
        time_series=_series(aggregates, LatencyPoint, stats),
        meta=context.meta(aggregates),
    )


@router.post("/errors", response_model=ErrorsResponse)
def errors(body: InsightsRequest, request: Request) -> ErrorsResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    per = aggregates.counters(keys.bucket, _VOLUME)
    return ErrorsResponse(
        summary=error_stats(total(per)),
        time_series=_series(aggregates, ErrorPoint, [error_stats(c) for c in per]),
        meta=context.meta(aggregates),
    )


@router.post("/tokens", response_model=TokensResponse)
def tokens(body: InsightsRequest, request: Request) -> TokensResponse:
    context = _context(request)
    aggregates = context.aggregates(body)
    per = aggregates.counters(keys.bucket, _TOKENS)
    whole = context.over(body.experiment_ids, context.window(body, series=False))
    [by_model] = whole.counters(keys.bucket)
    return TokensResponse(
        summary=token_counts(total(per)),
        time_series=_series(aggregates, TokenPoint, [token_counts(c) for c in per]),
        models=_models(by_model),
        meta=context.meta(aggregates),
    )


def _series(aggregates: Aggregates, point: type[P], values: Sequence[BaseModel]) -> list[P]:
    """Each period's values as a point of the series, labelled with the period's start."""
    return [
        point(time_bucket=label, **value.model_dump())
        for label, value in zip(aggregates.window.labels, values, strict=True)
    ]


def volume_counts(c: Counter[str]) -> VolumeCounts:
    return VolumeCounts(
        count=int(c[fields.TRACES]),
        ok_count=int(c[fields.status("OK")]),
        error_count=int(c[fields.status("ERROR")]),
    )


def latency_stats(c: Counter[str], digest: TDigest | None) -> LatencyStats:
    traces = int(c[fields.TRACES])
    if not traces or digest is None or digest.is_empty():
        return LatencyStats(
            p50_latency=None,
            p90_latency=None,
            p99_latency=None,
            avg_latency=None,
            min_latency=None,
            max_latency=None,
        )
    return LatencyStats(
        p50_latency=digest.quantile(0.5),
        p90_latency=digest.quantile(0.9),
        p99_latency=digest.quantile(0.99),
        avg_latency=c[fields.LATENCY_SUM] / traces,
        min_latency=digest.min(),  # a t-digest keeps its extremes exactly
        max_latency=digest.max(),
    )


def error_stats(c: Counter[str]) -> ErrorStats:
    traces, failed = int(c[fields.TRACES]), int(c[fields.status("ERROR")])
    return ErrorStats(
        total_count=traces,
        error_count=failed,
        error_rate=100.0 * failed / traces if traces else 0.0,
    )


def token_counts(c: Counter[str]) -> TokenCounts:
    given, taken = int(c[fields.INPUT_TOKENS]), int(c[fields.OUTPUT_TOKENS])
    return TokenCounts(input_tokens=given, output_tokens=taken, total_tokens=given + taken)


def _models(c: Counter[str]) -> list[ModelTokens]:
    by_model: dict[str, Counter[str]] = {}
    for name, value in c.items():
        parsed = fields.parse_model(name)
        if parsed is not None:
            by_model.setdefault(parsed[0], Counter())[parsed[1]] += value
    out = [
        ModelTokens(
            model=model,
            call_count=int(m["calls"]),
            input_tokens=int(m["input_tokens"]),
            output_tokens=int(m["output_tokens"]),
            total_tokens=int(m["input_tokens"] + m["output_tokens"]),
        )
        for model, m in by_model.items()
    ]
    return sorted(out, key=lambda m: (-m.total_tokens, m.model))
