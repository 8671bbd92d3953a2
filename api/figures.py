"""Answer figures built from bucket figures, shared by the endpoints and the live feed."""

import math
from collections.abc import Callable
from typing import Protocol

from trace_insights.api.aggregates import Figures
from trace_insights.api.schemas import (
    CostFigures,
    CostMeta,
    ErrorStats,
    LatencyStats,
    Meta,
    ModelCost,
    ProviderCost,
    TokenCounts,
    UnpricedModel,
    VolumeCounts,
)
from trace_insights.core import keys, money
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


def cost_figures(c: Figures) -> CostFigures:
    unpriced = int(c[fields.UNPRICED_CALLS])
    return CostFigures(
        cost=money.shown(money.read(c, fields.COST), unpriced), unpriced_calls=unpriced
    )


def tag_costs(spent: Figures) -> tuple[dict[str, int], dict[str, int]]:
    """A tag cost hash (``keys.tag_cost``) as value → cost and value → unpriced calls."""
    unpriced = {
        name.removesuffix(keys.UNPRICED): int(n)
        for name, n in spent.items()
        if name.endswith(keys.UNPRICED)
    }
    costs = money.by_name({k: n for k, n in spent.items() if not k.endswith(keys.UNPRICED)})
    return costs, unpriced


def by_subject(c: Figures, parse: Callable[[str], tuple[str, str] | None]) -> dict[str, Figures]:
    """``<kind>:<subject>:<what>`` fields as subject → what → value."""
    out: dict[str, Figures] = {}
    for name, value in c.items():
        parsed = parse(name)
        if parsed is not None:
            out.setdefault(parsed[0], Figures())[parsed[1]] += value
    return out


def model_costs(c: Figures) -> list[ModelCost]:
    """Per model: calls, tokens and cost, the most tokens first."""
    out = []
    for model, m in by_subject(c, fields.parse_model).items():
        given, taken = int(m["input_tokens"]), int(m["output_tokens"])
        out.append(
            ModelCost(
                model=model,
                call_count=int(m["calls"]),
                input_tokens=given,
                output_tokens=taken,
                total_tokens=given + taken,
                cost=money.shown(money.read(m, "cost"), int(m["unpriced_calls"])),
                unpriced_calls=int(m["unpriced_calls"]),
            )
        )
    return sorted(out, key=lambda m: (-m.total_tokens, m.model))


def provider_costs(c: Figures) -> list[ProviderCost]:
    """Per provider (as the spans report it): model calls and cost, the costliest first."""
    found = [
        (money.read(p, "cost"), provider, p)
        for provider, p in by_subject(c, fields.parse_provider).items()
    ]
    found.sort(key=lambda item: (-item[0], item[1]))
    return [
        ProviderCost(
            provider=provider or None,
            call_count=int(p["calls"]),
            cost=money.shown(cost, int(p["unpriced_calls"])),
            unpriced_calls=int(p["unpriced_calls"]),
        )
        for cost, provider, p in found
    ]


def cost_meta(meta: Meta, models: list[ModelCost]) -> CostMeta:
    """``meta`` with the currency and the models that no price was found for."""
    unpriced = [
        UnpricedModel(model=m.model, call_count=m.unpriced_calls)
        for m in models
        if m.unpriced_calls
    ]
    return CostMeta(**meta.model_dump(), unpriced_models=unpriced)
