"""The stream dimensions of traces (``trace_insights.core.dimensions``) counted in SQL, so one
query can count every dimension value of the traces a filter selects, in and out of it.

Tag values are exact here (no per-key cap), and string assessment values are shown bare and
others as JSON text, as the stream names them.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.core import dimensions
from trace_insights.truth import dialects, span_stats
from trace_insights.truth.models import Assessment

ALL = ""  # the row that counts the universe itself


def dimension_counts(universe: Any, dialect: str) -> sa.CompoundSelect[str, int, int]:
    """(dimension, traces, traces in the slice) for every dimension value of the traces in
    ``universe`` — a subquery with ``trace_id``, ``in_slice`` (1 or 0) and the traces'
    ``status``, ``execution_time_ms``, ``span_stats`` and ``tags`` — plus one ALL row for the
    universe.

    Each source is counted where it is read (the traces' own columns, their span stats and tags,
    assessments) and only the counts are combined, so no row per trace and dimension is ever
    joined back to the universe. Span dimensions come from the span stats, not the span rows.
    """
    u = universe.c
    thresholds = _numbers(dimensions.LATENCY_THRESHOLDS_MS)
    count_thresholds = _numbers(dimensions.SPAN_COUNT_THRESHOLDS)
    # traces share span stats and tag sets: each distinct object is expanded once, weighted by
    # its traces
    shared = sa.select(u.span_stats, *_counted(u.in_slice)).group_by(u.span_stats).subquery()
    spelled = dialects.of(dialect)
    pairs = spelled.json_each(shared.c.span_stats)
    stats = (
        sa.select(
            pairs.c.key.label("key"),
            sa.cast(pairs.c.value, sa.Integer).label("spans"),
            shared.c.n,
            shared.c.s,
        )
        .select_from(shared)
        .join(pairs, sa.true())
        .subquery()
    )
    # how many traces hold each (key, count)
    per_count = (
        sa.select(stats.c.key, stats.c.spans, *_summed(stats))
        .group_by(stats.c.key, stats.c.spans)
        .cte("per_count")
    )
    by_key = sa.select(per_count.c.key, *_summed(per_count)).group_by(per_count.c.key).subquery()
    type_counts = (
        sa.select(per_count.c.key, count_thresholds.c.t, *_summed(per_count))
        .join(count_thresholds, per_count.c.spans > count_thresholds.c.t)
        .where(_prefixed(per_count.c.key, f"{span_stats.SPAN_TYPE}:"))
        .group_by(per_count.c.key, count_thresholds.c.t)
        .subquery()
    )
    kind, text = spelled.json_scalar(Assessment.value, None)
    shown = spelled.json_shown(Assessment.value, kind, text)
    assessed = (
        sa.select(
            Assessment.trace_id,
            (sa.literal("assessment.") + Assessment.name + "=" + shown).label("dimension"),
            u.in_slice,
        )
        .join(universe, Assessment.trace_id == u.trace_id)
        .distinct()
        .subquery()
    )
    tag_sets = sa.select(u.tags, *_counted(u.in_slice)).group_by(u.tags).subquery()
    tag_pairs = spelled.json_each(tag_sets.c.tags)
    tags = (
        sa.select(tag_pairs.c.key, tag_pairs.c.value, *_summed(tag_sets))
        .select_from(tag_sets)
        .join(tag_pairs, sa.true())
        .group_by(tag_pairs.c.key, tag_pairs.c.value)
        .subquery()
    )
    # each trace counted once at the highest threshold it exceeds, then added up per threshold
    exceeded = sa.case(
        *(
            (u.execution_time_ms > t, t)
            for t in sorted(dimensions.LATENCY_THRESHOLDS_MS, reverse=True)
        ),
        else_=-1,
    ).label("level")
    levels = sa.select(exceeded, *_counted(u.in_slice)).group_by(exceeded).subquery()
    latency = (
        sa.select(thresholds.c.t, *_summed(levels))
        .join(thresholds, levels.c.level >= thresholds.c.t)
        .group_by(thresholds.c.t)
        .subquery()
    )

    def stat(prefix: str, before: str, after: str = "") -> sa.Select:  # type: ignore[type-arg]
        name = sa.func.substr(by_key.c.key, len(prefix) + 1)
        return sa.select(sa.literal(before) + name + after, by_key.c.n, by_key.c.s).where(
            _prefixed(by_key.c.key, prefix)
        )

    type_name = sa.func.substr(type_counts.c.key, len(span_stats.SPAN_TYPE) + 2)
    return sa.union_all(
        sa.select(sa.literal(ALL), *_counted(u.in_slice)).select_from(universe),
        sa.select(sa.literal("status=") + u.status, *_counted(u.in_slice)).group_by(u.status),
        stat(f"{span_stats.SPAN_TYPE}:", "span.type="),
        stat(f"{span_stats.TOOL}:", "tools.", "=used"),
        stat(f"{span_stats.TOOL_ERROR}:", "tools.", "=error"),
        stat(f"{span_stats.MODEL}:", "model="),
        sa.select(
            sa.literal("count(span.type=") + type_name + ")>" + sa.cast(type_counts.c.t, sa.Text),
            type_counts.c.n,
            type_counts.c.s,
        ),
        sa.select(sa.literal("tags.") + tags.c.key + "=" + tags.c.value, tags.c.n, tags.c.s),
        sa.select(sa.literal("latency>") + sa.cast(latency.c.t, sa.Text), latency.c.n, latency.c.s),
        sa.select(assessed.c.dimension, *_counted(assessed.c.in_slice)).group_by(
            assessed.c.dimension
        ),
    )


def _counted(in_slice: Any) -> tuple[Any, Any]:
    """How many rows, and how many of them in the slice."""
    return sa.func.count().label("n"), sa.func.sum(in_slice).label("s")


def _summed(counted: Any) -> tuple[Any, Any]:
    """``_counted`` columns of groups, added up."""
    return sa.func.sum(counted.c.n).label("n"), sa.func.sum(counted.c.s).label("s")


def _prefixed(key: Any, prefix: str) -> ColumnElement[bool]:
    """``key`` starts with ``prefix`` (compared, not LIKE: a stat key may hold ``_``)."""
    return sa.func.substr(key, 1, len(prefix)) == prefix


def _numbers(values: tuple[int, ...]) -> Any:
    """A one-column table of constants (a UNION, which every dialect reads)."""
    return sa.union_all(
        *(sa.select(sa.literal(v, sa.Integer).label("t")) for v in values)
    ).subquery()
