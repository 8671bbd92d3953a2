"""The stream dimensions of traces (``trace_insights.core.dimensions``) as SQL rows, so one
grouped query can count every dimension value of the traces a filter selects.

Tag values are exact here (no per-key cap), and string assessment values are shown bare and
others as JSON text, as the stream names them.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.core import dimensions
from trace_insights.truth import span_stats
from trace_insights.truth.filter_sql import json_scalar
from trace_insights.truth.models import Assessment, Trace, TraceTag

ALL = ""  # the row every trace has: its group counts the universe


def dimension_rows(universe: Any, dialect: str) -> sa.CompoundSelect:
    """(trace_id, dimension) for every trace id in ``universe`` (a subquery with ``trace_id``)
    and each of its dimensions, plus one (trace_id, ALL) row per trace. Span dimensions come
    from the traces' span stats (``span_stats``), not from the span rows."""
    ids = universe.c.trace_id
    thresholds = _numbers(dimensions.LATENCY_THRESHOLDS_MS)
    count_thresholds = _numbers(dimensions.SPAN_COUNT_THRESHOLDS)
    kind, text = json_scalar(Assessment.value, None, dialect)
    shown = sa.case((kind == "string", text), else_=sa.cast(Assessment.value, sa.Text))
    if dialect != "postgresql":
        shown = sa.case((kind == "text", text), else_=sa.func.json(Assessment.value))
    traces = sa.select(Trace).join(universe, Trace.trace_id == ids).subquery()
    each = sa.func.jsonb_each_text if dialect == "postgresql" else sa.func.json_each
    pairs = each(traces.c.span_stats).table_valued("key", "value")
    stats = (
        sa.select(traces.c.trace_id, pairs.c.key, sa.cast(pairs.c.value, sa.Integer).label("n"))
        .select_from(traces)
        .join(pairs, sa.true())
        .subquery()
    )

    def named(prefix: str) -> tuple[Any, ColumnElement[bool]]:
        """The name after ``prefix`` in a stat key, and whether the key has that prefix."""
        start = len(prefix)
        return (sa.func.substr(stats.c.key, start + 1),
                sa.func.substr(stats.c.key, 1, start) == prefix)  # fmt: skip

    span_type, is_type = named(f"{span_stats.SPAN_TYPE}:")
    tool, is_tool = named(f"{span_stats.TOOL}:")
    failed, is_failed = named(f"{span_stats.TOOL_ERROR}:")
    model, is_model = named(f"{span_stats.MODEL}:")
    return sa.union_all(
        sa.select(ids, sa.literal(ALL)),
        sa.select(traces.c.trace_id, sa.literal("status=") + traces.c.status),
        sa.select(stats.c.trace_id, sa.literal("span.type=") + span_type).where(is_type),
        sa.select(stats.c.trace_id, sa.literal("tools.") + tool + "=used").where(is_tool),
        sa.select(stats.c.trace_id, sa.literal("tools.") + failed + "=error").where(is_failed),
        sa.select(stats.c.trace_id, sa.literal("model=") + model).where(is_model),
        sa.select(TraceTag.trace_id, sa.literal("tags.") + TraceTag.key + "=" + TraceTag.value)
        .join(universe, TraceTag.trace_id == ids),
        sa.select(traces.c.trace_id, sa.literal("latency>") + sa.cast(thresholds.c.t, sa.Text))
        .join(thresholds, traces.c.execution_time_ms > thresholds.c.t),
        sa.select(stats.c.trace_id,
                  sa.literal("count(span.type=") + span_type + ")>"
                  + sa.cast(count_thresholds.c.t, sa.Text))
        .where(is_type)
        .join(count_thresholds, stats.c.n > count_thresholds.c.t),
        sa.select(Assessment.trace_id, sa.literal("assessment.") + Assessment.name + "=" + shown)
        .join(universe, Assessment.trace_id == ids)
        .distinct(),
    )  # fmt: skip


def _numbers(values: tuple[int, ...]) -> Any:
    """A one-column table of constants (a UNION, which every dialect reads)."""
    return sa.union_all(
        *(sa.select(sa.literal(v, sa.Integer).label("t")) for v in values)
    ).subquery()
