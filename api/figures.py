"""Answer figures built from bucket figures, shared by the endpoints and the live feed."""

import math
from typing import Protocol

from trace_insights.api.aggregates import Figures
from trace_insights.api.schemas import ErrorStats, LatencyStats, TokenCounts, VolumeCounts
from trace_insights.core.keys import fields


class Quantiles(Protocol):
    """What latency figures read of a t-digest, or of the exact ranks."""

    def quantile(self, q: float) -> float: ...

    def min(self) -> float: ...

    def max(self) -> float: ...

    def is_empty(self) -> bool: ...


def volume_counts(c: Figures) -> VolumeCounts:
    return VolumeCounts(
        count=int(c[fields.TRACES]),
        ok_count=int(c[fields.status("OK")]),
        error_count=int(c[fields.status("ERROR")]),
    )


def latency_stats(c: Figures, digest: Quantiles | None) -> LatencyStats:
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


def error_stats(c: Figures) -> ErrorStats:
    traces, failed = int(c[fields.TRACES]), int(c[fields.status("ERROR")])
    return ErrorStats(
        total_count=traces,
        error_count=failed,
        error_rate=100.0 * failed / traces if traces else 0.0,
    )


def token_counts(c: Figures) -> TokenCounts:
    given, taken = int(c[fields.INPUT_TOKENS]), int(c[fields.OUTPUT_TOKENS])
    return TokenCounts(input_tokens=given, output_tokens=taken, total_tokens=given + taken)


def finite(value: float) -> float | None:
    """NaN (an undefined score) as JSON's null."""
    return None if math.isnan(value) else value
