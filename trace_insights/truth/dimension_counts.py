"""The SQL counting form of each dimension family of the registry
(``trace_insights.core.dimensions``), so one query counts every dimension value of the traces
a filter selects, in and out of it.
"""

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.core import dimensions
from trace_insights.truth import dialects, span_stats
from trace_insights.truth.filter_sql import Compiled
from trace_insights.truth.models import Assessment, Trace

ALL = ""  # the row that counts the universe itself


def universe(in_slice: Compiled, *where: ColumnElement[bool]) -> sa.CTE:
    """The traces ``where`` selects, with what ``dimension_counts`` reads of each and whether
    ``in_slice`` holds for it."""
    return (
        in_slice.joined(
            sa.select(
                Trace.trace_id,
                Trace.status,
                Trace.execution_time_ms,
                Trace.cost,
                Trace.span_stats,
                Trace.tags,
                sa.case((in_slice.predicate, 1), else_=0).label("in_slice"),
            )
        )
        .where(*where)
        .cte("universe")
    )


class Sources:
    """What the forms of one query read: the universe, and the span stats expanded once."""

    def __init__(self, universe: Any, dialect: dialects.Dialect) -> None:
        self.universe, self.u, self.dialect = universe, universe.c, dialect

    @functools.cached_property
    def per_count(self) -> Any:
        """(span stat key, spans, traces holding that many, of which in the slice): traces
        share span stats, so each distinct object is expanded once, weighted by its traces."""
        u = self.u
        shared = sa.select(u.span_stats, *_counted(u.in_slice)).group_by(u.span_stats).subquery()
        pairs = self.dialect.json_each(shared.c.span_stats)
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
        return (
            sa.select(stats.c.key, stats.c.spans, *_summed(stats))
            .group_by(stats.c.key, stats.c.spans)
            .cte("per_count")
        )

    @functools.cached_property
    def by_key(self) -> Any:
        per_count = self.per_count
        return sa.select(per_count.c.key, *_summed(per_count)).group_by(per_count.c.key).subquery()


Form = Callable[[Sources], list[sa.Select[Any]]]  # a family's rows: (dimension, n, in slice)


def dimension_counts(universe: Any, dialect: str) -> sa.CompoundSelect[str, int, int]:
    """(dimension, traces, traces in the slice) for every dimension value of the traces in
    ``universe`` — a subquery with ``trace_id``, ``in_slice`` (1 or 0) and the traces'
    ``status``, ``execution_time_ms``, ``span_stats`` and ``tags`` — plus one ALL row for the
    universe.

    Each source is counted where it is read (the traces' own columns, their span stats and tags,
    assessments) and only the counts are combined, so no row per trace and dimension is ever
    joined back to the universe. Span dimensions come from the span stats, not the span rows.
    """
    sources = Sources(universe, dialects.of(dialect))
    return sa.union_all(
        sa.select(sa.literal(ALL), *_counted(universe.c.in_slice)).select_from(universe),
        *(row for family in dimensions.FAMILIES for row in FORMS[family](sources)),
    )


def _status(sources: Sources) -> list[sa.Select[Any]]:
    u = sources.u
    return [sa.select(sa.literal("status=") + u.status, *_counted(u.in_slice)).group_by(u.status)]


def _stat(prefix: str, before: str, after: str = "") -> Form:
    """A family read from the span stat keys ``<prefix><name>``: ``<before><name><after>``."""

    def form(sources: Sources) -> list[sa.Select[Any]]:
        by_key = sources.by_key
        name = sa.func.substr(by_key.c.key, len(prefix) + 1)
        return [
            sa.select(sa.literal(before) + name + after, by_key.c.n, by_key.c.s).where(
                _prefixed(by_key.c.key, prefix)
            )
        ]

    return form


def _tools(sources: Sources) -> list[sa.Select[Any]]:
    used = _stat(f"{span_stats.TOOL}:", "tools.", "=used")
    failed = _stat(f"{span_stats.TOOL_ERROR}:", "tools.", "=error")
    return used(sources) + failed(sources)


def _span_count(sources: Sources) -> list[sa.Select[Any]]:
    per_count = sources.per_count
    count_thresholds = _numbers(dimensions.SPAN_COUNT_THRESHOLDS)
    type_counts = (
        sa.select(per_count.c.key, count_thresholds.c.t, *_summed(per_count))
        .join(count_thresholds, per_count.c.spans > count_thresholds.c.t)
        .where(_prefixed(per_count.c.key, f"{span_stats.SPAN_TYPE}:"))
        .group_by(per_count.c.key, count_thresholds.c.t)
        .subquery()
    )
    type_name = sa.func.substr(type_counts.c.key, len(span_stats.SPAN_TYPE) + 2)
    return [
        sa.select(
            sa.literal("count(span.type=") + type_name + ")>" + sa.cast(type_counts.c.t, sa.Text),
            type_counts.c.n,
            type_counts.c.s,
        )
    ]


def _tags(sources: Sources) -> list[sa.Select[Any]]:
    """Tag values exact (no per-key cap); traces share tag sets, each expanded once."""
    u, dialect = sources.u, sources.dialect
    tag_sets = sa.select(u.tags, *_counted(u.in_slice)).group_by(u.tags).subquery()
    tag_pairs = dialect.json_each(tag_sets.c.tags)
    tags = (
        sa.select(tag_pairs.c.key, tag_pairs.c.value, *_summed(tag_sets))
        .select_from(tag_sets)
        .join(tag_pairs, sa.true())
        .group_by(tag_pairs.c.key, tag_pairs.c.value)
        .subquery()
    )
    return [sa.select(sa.literal("tags.") + tags.c.key + "=" + tags.c.value, tags.c.n, tags.c.s)]


def _latency(sources: Sources) -> list[sa.Select[Any]]:
    """Each trace counted once at the highest threshold it exceeds, then added up."""
    u = sources.u
    thresholds = _numbers(dimensions.LATENCY_THRESHOLDS_MS)
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
    return [
        sa.select(sa.literal("latency>") + sa.cast(latency.c.t, sa.Text), latency.c.n, latency.c.s)
    ]


def _cost(sources: Sources) -> list[sa.Select[Any]]:
    """As latency: each trace counted once at the highest level it exceeds (levels by index,
    their pico-dollars compared), then added up; a trace without a cost has none."""
    u = sources.u
    levels = dimensions.COST.levels
    exceeded = sa.case(
        *((u.cost > pico, index) for index, (_, pico) in reversed(list(enumerate(levels)))),
        else_=-1,
    ).label("level")
    counted = sa.select(exceeded, *_counted(u.in_slice)).group_by(exceeded).subquery()
    indexes = _numbers(tuple(range(len(levels))))
    cost = (
        sa.select(indexes.c.t, *_summed(counted))
        .join(indexes, counted.c.level >= indexes.c.t)
        .group_by(indexes.c.t)
        .subquery()
    )
    name = sa.case(*((cost.c.t == index, f"cost>{text}") for index, (text, _) in enumerate(levels)))
    return [sa.select(name, cost.c.n, cost.c.s)]


def _assessments(sources: Sources) -> list[sa.Select[Any]]:
    """String values bare, others as JSON text, as the stream names them."""
    u, dialect, universe = sources.u, sources.dialect, sources.universe
    kind, text = dialect.json_scalar(Assessment.value, None)
    shown = dialect.json_shown(Assessment.value, kind, text)
    assessed = (
        sa.select(
            Assessment.trace_id,
            (sa.literal("assessment.") + Assessment.name + "=" + shown).label("dimension"),
            u.in_slice,
        )
        .join(universe, Assessment.trace_id == u.trace_id)
        .where(Assessment.counted())
        .distinct()
        .subquery()
    )
    return [
        sa.select(assessed.c.dimension, *_counted(assessed.c.in_slice)).group_by(
            assessed.c.dimension
        )
    ]


# every family of the registry, counted in SQL (a family without a form fails at import)
FORMS: dict[dimensions.Family, Form] = {
    dimensions.STATUS: _status,
    dimensions.SPAN_TYPE: _stat(f"{span_stats.SPAN_TYPE}:", "span.type="),
    dimensions.MODEL: _stat(f"{span_stats.MODEL}:", "model="),
    dimensions.TOOLS: _tools,
    dimensions.TAGS: _tags,
    dimensions.LATENCY: _latency,
    dimensions.COST: _cost,
    dimensions.SPAN_COUNT: _span_count,
    dimensions.ASSESSMENTS: _assessments,
}
assert set(FORMS) == set(dimensions.FAMILIES), "a dimension family has no SQL form"


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
