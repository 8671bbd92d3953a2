"""Traffic figures per period counted from the finalized traces, exactly: the answer when the
stored buckets cannot place a period's edges (a local midnight inside a UTC day whose hours
have expired). Latency quantiles are exact, interpolated between neighbouring ranks as numpy's
default ``linear`` method does; min and max are the extremes.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import sqlalchemy as sa

from trace_insights.truth.models import Span, Trace, unpriced_call

QUANTILES = (Fraction(1, 2), Fraction(9, 10), Fraction(99, 100))
_CHUNK = 200  # periods per statement: each is one branch of a CASE


@dataclass
class PeriodStats:
    traces: int = 0
    ok: int = 0
    errors: int = 0
    latency_sum: int = 0
    latency_min: int | None = None
    latency_max: int | None = None
    quantiles: dict[Fraction, float] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int = 0  # pico-USD
    unpriced_calls: int = 0


@dataclass(frozen=True)
class ModelUse:
    """The calls of one model from one provider (None: not reported)."""

    model: str
    provider: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost: int  # pico-USD
    unpriced_calls: int


def period_stats(
    connection: sa.Connection, experiment_ids: list[str], periods: Sequence[tuple[int, int]]
) -> list[PeriodStats]:
    """One ``PeriodStats`` per (start, end) period; periods are ascending and disjoint."""
    out = [PeriodStats() for _ in periods]
    for first, chunk in _chunks(periods):
        index = _period_index(chunk, first)
        scope = sa.and_(
            Trace.experiment_id.in_(experiment_ids),
            Trace.timestamp_ms >= chunk[0][0],
            Trace.timestamp_ms < chunk[-1][1],
        )
        latency = Trace.execution_time_ms
        totals = (
            sa.select(
                index.label("i"),
                sa.func.count(),
                sa.func.sum(sa.case((Trace.status == "OK", 1), else_=0)),
                sa.func.sum(sa.case((Trace.status == "ERROR", 1), else_=0)),
                sa.func.sum(latency),
                sa.func.min(latency),
                sa.func.max(latency),
                sa.func.sum(Trace.input_tokens),
                sa.func.sum(Trace.output_tokens),
                sa.func.sum(Trace.cost),
                sa.func.sum(Trace.unpriced_calls),
            )
            .where(scope)
            .group_by(sa.literal_column("i"))
        )
        for row in connection.execute(totals):
            i, n, ok, errors, total, low, high, given, taken, cost, unpriced = row
            if i is None:
                continue  # between two periods given apart
            out[i] = PeriodStats(
                int(n),
                int(ok),
                int(errors),
                int(total),
                int(low),
                int(high),
                {},
                int(given),
                int(taken),
                int(cost or 0),
                int(unpriced or 0),
            )
        ranks: dict[int, dict[int, float]] = {}
        for i, rank, value in connection.execute(_ranked(index, scope)):
            ranks.setdefault(i, {})[int(rank)] = float(value)
        for i, at_rank in ranks.items():
            out[i].quantiles = _quantiles(out[i].traces, at_rank)
    return out


def model_uses(
    connection: sa.Connection, experiment_ids: list[str], start_ms: int, end_ms: int
) -> list[ModelUse]:
    """Per model and provider, the calls, tokens and cost of the spans of the traces started
    in the range."""
    query = (
        sa.select(
            Span.model,
            Span.provider,
            sa.func.count(),
            sa.func.sum(Span.input_tokens),
            sa.func.sum(Span.output_tokens),
            sa.func.sum(Span.cost),
            sa.func.sum(sa.case((unpriced_call(), 1), else_=0)),
        )
        .join(Trace, Trace.trace_id == Span.trace_id)
        .where(
            Trace.experiment_id.in_(experiment_ids),
            Trace.timestamp_ms >= start_ms,
            Trace.timestamp_ms < end_ms,
            Span.model.is_not(None),
        )
        .group_by(Span.model, Span.provider)
    )
    return [
        ModelUse(
            str(model),
            provider,
            int(calls),
            int(given or 0),
            int(taken or 0),
            int(cost or 0),
            int(unpriced_calls or 0),
        )
        for model, provider, calls, given, taken, cost, unpriced_calls in connection.execute(query)
    ]


def _chunks(periods: Sequence[tuple[int, int]]) -> Iterator[tuple[int, Sequence[tuple[int, int]]]]:
    for first in range(0, len(periods), _CHUNK):
        yield first, periods[first : first + _CHUNK]


def _period_index(chunk: Sequence[tuple[int, int]], first: int) -> sa.ColumnElement[int]:
    """The index of the period a trace's start falls in (NULL in a gap between periods)."""
    return sa.case(
        *[
            (sa.and_(Trace.timestamp_ms >= lo, Trace.timestamp_ms < hi), first + i)
            for i, (lo, hi) in enumerate(chunk)
        ],
        else_=sa.null(),
    )


def _ranked(
    index: sa.ColumnElement[int], scope: sa.ColumnElement[bool]
) -> sa.Select[int, int, int]:
    """(period, rank, latency) of only the ranks the quantiles interpolate between: for each
    q, floor and ceiling of q·(n-1), counted from 0."""
    traces = sa.select(index.label("i"), Trace.execution_time_ms.label("v")).where(scope).subquery()
    ranked = (
        sa.select(
            traces.c.i,
            traces.c.v,
            (sa.func.row_number().over(partition_by=traces.c.i, order_by=traces.c.v) - 1).label(
                "rank"
            ),
            sa.func.count().over(partition_by=traces.c.i).label("n"),
        )
        .where(traces.c.i.is_not(None))
        .subquery()
    )
    wanted = []
    for q in QUANTILES:
        scaled = (ranked.c.n - 1) * q.numerator
        wanted += [
            ranked.c.rank == scaled // q.denominator,
            ranked.c.rank == (scaled + q.denominator - 1) // q.denominator,
        ]
    return sa.select(ranked.c.i, ranked.c.rank, ranked.c.v).where(sa.or_(*wanted))


def _quantiles(n: int, at_rank: dict[int, float]) -> dict[Fraction, float]:
    """numpy's ``linear`` quantile: between ranks floor(h) and ceil(h) of h = q·(n-1)."""
    out = {}
    for q in QUANTILES:
        h = q * (n - 1)
        low = h.numerator // h.denominator
        high = low if h == low else low + 1
        out[q] = at_rank[low] + float(h - low) * (at_rank[high] - at_rank[low])
    return out
