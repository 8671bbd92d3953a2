"""``tools``: invocations, errors, traces and latency of every tool called in a range."""

from fastapi import APIRouter, Request
from fastdigest import TDigest

from trace_insights.api.aggregates import Figures, KeyOf, combined, total
from trace_insights.api.context import Context
from trace_insights.api.errors import not_found
from trace_insights.api.schemas import (
    InsightsRequest,
    Overflow,
    ToolDiscoveryResponse,
    ToolMetricsRequest,
    ToolMetricsResponse,
    ToolPoint,
    ToolsSummary,
    ToolStats,
)
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.dimensions import OTHER
from trace_insights.core.keys import fields

router = APIRouter(prefix="/tools")


@router.post("/discovery", response_model=ToolDiscoveryResponse)
def discovery(body: InsightsRequest, request: Request) -> ToolDiscoveryResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False)
    counts = total(aggregates.counters(keys.bucket))
    names = {parsed[0] for f in counts if (parsed := fields.parse_tool(f)) is not None}
    names.discard(OTHER)  # tool names past the cap: counted together, reported as overflow
    digests = aggregates.digests_by({name: _tool_digest(name) for name in names})
    data = [_stats(name, counts, digests[name][0]) for name in names]
    data.sort(key=lambda tool: (-tool.invocation_count, tool.tool_name))
    other = int(counts[fields.tool(OTHER, "traces")])
    summary = ToolsSummary(
        tool_count=len(data),
        invocation_count=sum(tool.invocation_count for tool in data)
        + int(counts[fields.tool(OTHER, "calls")]),
        trace_count=int(counts[fields.TOOL_TRACES]),
    )
    overflow = [Overflow(tag_key=None, other_count=other)] if other else []
    return ToolDiscoveryResponse(
        summary=summary, data=data, meta=context.meta(aggregates, overflow=overflow)
    )


@router.post("/metrics", response_model=ToolMetricsResponse)
def metrics(body: ToolMetricsRequest, request: Request) -> ToolMetricsResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body)
    name = body.tool_name
    wanted = [fields.tool(name, what) for what in ("calls", "errors", "traces", "latency_sum")]
    per = aggregates.counters(keys.bucket, wanted)
    digests = aggregates.digests(lambda e, r, s: _digest_key(e, r, s, name))
    summary = _stats(name, total(per), combined(digests))
    if not summary.invocation_count:
        raise not_found(f"no calls of tool {name!r} in the range")
    series = []
    for label, c, digest in zip(aggregates.window.labels, per, digests, strict=True):
        p50, p90, p99 = _quantiles(digest)
        series.append(
            ToolPoint(
                time_bucket=label,
                count=int(c[fields.tool(name, "calls")]),
                trace_count=int(c[fields.tool(name, "traces")]),
                error_count=int(c[fields.tool(name, "errors")]),
                p50_latency=p50,
                p90_latency=p90,
                p99_latency=p99,
            )
        )
    return ToolMetricsResponse(summary=summary, time_series=series, meta=context.meta(aggregates))


def _tool_digest(name: str) -> KeyOf:
    return lambda e, r, s: _digest_key(e, r, s, name)


def _digest_key(experiment: str, resolution: Resolution, start: int, name: str) -> str:
    return keys.digests(experiment, resolution, start, f"tool:{name}")


def _quantiles(digest: TDigest | None) -> tuple[float | None, float | None, float | None]:
    if digest is None:
        return None, None, None
    return digest.quantile(0.5), digest.quantile(0.9), digest.quantile(0.99)


def _stats(name: str, c: Figures, digest: TDigest | None) -> ToolStats:
    calls, errors = int(c[fields.tool(name, "calls")]), int(c[fields.tool(name, "errors")])
    p50, p90, p99 = _quantiles(digest)
    return ToolStats(
        tool_name=name,
        trace_count=int(c[fields.tool(name, "traces")]),
        invocation_count=calls,
        error_count=errors,
        error_rate=100.0 * errors / calls if calls else 0.0,
        avg_latency=c[fields.tool(name, "latency_sum")] / calls if calls else None,
        p50_latency=p50,
        p90_latency=p90,
        p99_latency=p99,
    )
