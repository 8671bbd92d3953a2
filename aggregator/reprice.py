"""``trace-insights rebuild --reprice``: price stored spans again with the prices in force now.

A span is priced once, when it is stored, with the table and overrides of that moment; a cost
is part of the truth from then on, so stream, store and rebuild agree. A price override
created or deleted later applies to past spans only through this: every span of the range's
traces that the sender did not price is priced again (the override or table entry in force at
each span's own start), its trace's cost summed again, and then the range's aggregates are
rebuilt from the truth.
"""

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from trace_insights.aggregator.rebuild import in_range
from trace_insights.core import money
from trace_insights.core.prices import REPORTED, Prices, call
from trace_insights.core.records import SpanRecord
from trace_insights.truth import dialects
from trace_insights.truth.models import Span, Trace, unpriced_call
from trace_insights.truth.price_overrides import CurrentPrices

_CHUNK = 2000


def reprice(
    engine: sa.Engine,
    start_ms: int | None,
    end_ms: int | None,
    experiment_ids: list[str] | None,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Returns how many spans' costs changed; each chunk of traces commits on its own (pricing
    again is idempotent)."""
    traces = in_range(sa.select(Trace.trace_id), start_ms, end_ms, experiment_ids)
    with engine.connect() as connection:
        prices = CurrentPrices().read(connection)
        trace_ids = list(connection.scalars(traces.order_by(Trace.trace_id)))
    changed = 0
    for chunk in _chunks(trace_ids):
        with engine.begin() as connection:
            changed += _reprice(connection, prices, chunk)
        progress(len(chunk))
    return changed


def _reprice(connection: sa.Connection, prices: Prices, trace_ids: list[str]) -> int:
    rows = connection.execute(
        sa.select(*_COLUMNS).where(
            dialects.of(connection).one_of(Span.trace_id, trace_ids),
            Span.model.is_not(None),
            sa.or_(Span.priced_by.is_(None), Span.priced_by != REPORTED),
        )
    ).all()
    spans = [_record(row) for row in rows]
    prices.price(spans)
    moved = [
        span
        for span, row in zip(spans, rows, strict=True)
        if (span.cost, span.priced_by) != (row.cost, row.priced_by)
    ]
    if moved:
        connection.execute(
            sa.update(Span)
            .where(Span.trace_id == sa.bindparam("t"), Span.span_id == sa.bindparam("s"))
            .values(cost=sa.bindparam("cost"), priced_by=sa.bindparam("priced_by")),
            [
                {"t": s.trace_id, "s": s.span_id, "cost": s.cost, "priced_by": s.priced_by}
                for s in moved
            ],
        )
        _sum_traces(connection, sorted({span.trace_id for span in moved}))
    return len(moved)


_COLUMNS = (
    Span.trace_id,
    Span.span_id,
    Span.model,
    Span.provider,
    Span.input_tokens,
    Span.output_tokens,
    Span.usage,
    Span.start_time_ns,
    Span.cost,
    Span.priced_by,
)


def _record(row: Any) -> SpanRecord:
    return call(
        row.model,
        row.provider,
        row.input_tokens,
        row.output_tokens,
        row.usage or {},
        row.start_time_ns,
        row.trace_id,
        row.span_id,
    )


def _sum_traces(connection: sa.Connection, trace_ids: list[str]) -> None:
    """Each trace's cost and unpriced calls again, from its spans (as ``summarize`` counts)."""
    sums = connection.execute(
        sa.select(
            Span.trace_id,
            sa.func.coalesce(sa.func.sum(Span.cost), 0),
            sa.func.sum(sa.case((unpriced_call(), 1), else_=0)),
        )
        .where(dialects.of(connection).one_of(Span.trace_id, trace_ids))
        .group_by(Span.trace_id)
    ).all()
    rows = [
        {
            "t": trace_id,
            "cost": money.trace_cost(int(cost)),
            "unpriced_calls": int(calls or 0),
        }
        for trace_id, cost, calls in sums
    ]
    connection.execute(
        sa.update(Trace)
        .where(Trace.trace_id == sa.bindparam("t"))
        .values(cost=sa.bindparam("cost"), unpriced_calls=sa.bindparam("unpriced_calls")),
        rows,
    )


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
