"""The stream dimensions of traces (``trace_insights.core.dimensions``) as SQL rows, so one
grouped query can count every dimension value of the traces a filter selects.

Tag values are exact here (no per-key cap), and string assessment values are shown bare and
others as JSON text, as the stream names them.
"""

from typing import Any

import sqlalchemy as sa

from trace_insights.core import dimensions
from trace_insights.truth.filter_sql import json_scalar
from trace_insights.truth.models import Assessment, Span, Trace, TraceTag

ALL = ""  # the row every trace has: its group counts the universe


def dimension_rows(universe: Any, dialect: str) -> sa.CompoundSelect:
    """(trace_id, dimension) for every trace id in ``universe`` (a subquery with ``trace_id``)
    and each of its dimensions, plus one (trace_id, ALL) row per trace."""
    ids = universe.c.trace_id
    spans = sa.select(Span).join(universe, Span.trace_id == ids).subquery()
    thresholds = _numbers(dimensions.LATENCY_THRESHOLDS_MS)
    count_thresholds = _numbers(dimensions.SPAN_COUNT_THRESHOLDS)
    per_type = (
        sa.select(spans.c.trace_id, spans.c.span_type, sa.func.count().label("n"))
        .group_by(spans.c.trace_id, spans.c.span_type)
        .subquery()
    )
    kind, text = json_scalar(Assessment.value, None, dialect)
    shown = sa.case((kind == "string", text), else_=sa.cast(Assessment.value, sa.Text))
    if dialect != "postgresql":
        shown = sa.case((kind == "text", text), else_=sa.func.json(Assessment.value))
    traces = sa.select(Trace).join(universe, Trace.trace_id == ids).subquery()
    return sa.union_all(
        sa.select(ids, sa.literal(ALL)),
        sa.select(traces.c.trace_id, sa.literal("status=") + traces.c.status),
        sa.select(spans.c.trace_id, sa.literal("span.type=") + spans.c.span_type).distinct(),
        sa.select(spans.c.trace_id, sa.literal("tools.") + spans.c.tool_name + "=used")
        .where(spans.c.tool_name.is_not(None))
        .distinct(),
        sa.select(spans.c.trace_id, sa.literal("tools.") + spans.c.tool_name + "=error")
        .where(spans.c.tool_name.is_not(None), spans.c.status == "ERROR")
        .distinct(),
        sa.select(spans.c.trace_id, sa.literal("model=") + spans.c.model)
        .where(spans.c.model.is_not(None))
        .distinct(),
        sa.select(TraceTag.trace_id, sa.literal("tags.") + TraceTag.key + "=" + TraceTag.value)
        .join(universe, TraceTag.trace_id == ids),
        sa.select(traces.c.trace_id, sa.literal("latency>") + sa.cast(thresholds.c.t, sa.Text))
        .join(thresholds, traces.c.execution_time_ms > thresholds.c.t),
        sa.select(per_type.c.trace_id,
                  sa.literal("count(span.type=") + per_type.c.span_type + ")>"
                  + sa.cast(count_thresholds.c.t, sa.Text))
        .join(count_thresholds, per_type.c.n > count_thresholds.c.t),
        sa.select(Assessment.trace_id, sa.literal("assessment.") + Assessment.name + "=" + shown)
        .join(universe, Assessment.trace_id == ids)
        .distinct(),
    )  # fmt: skip


def _numbers(values: tuple[int, ...]) -> Any:
    """A one-column table of constants (a UNION, which every dialect reads)."""
    return sa.union_all(
        *(sa.select(sa.literal(v, sa.Integer).label("t")) for v in values)
    ).subquery()
