"""``dimensions``: what can be correlated in a range, NPMI between two dimensions, and the
strongest partners of one — from occurrence and co-occurrence counts, in O(buckets)."""

import math

from fastapi import APIRouter, Request

from trace_insights.api.aggregates import Aggregates, Figures, total
from trace_insights.api.context import Context
from trace_insights.api.errors import invalid
from trace_insights.api.figures import finite
from trace_insights.api.filtering import condition
from trace_insights.api.occurrences import Counts
from trace_insights.api.schemas import (
    Correlation,
    CorrelationScore,
    CorrelationsRequest,
    CorrelationsResponse,
    Dimension,
    DimensionCount,
    DimensionParameter,
    DimensionsDiscoveryResponse,
    InsightsRequest,
    IntersectionCount,
    NpmiRequest,
    NpmiResponse,
)
from trace_insights.core import dimensions as stream
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.dimensions import ALL, Described, Requested, count, joint
from trace_insights.core.filters import Unwritable, unparse
from trace_insights.core.npmi import npmi, strength
from trace_insights.truth.dimension_counts import ALL as ALL_ROWS
from trace_insights.truth.dimension_counts import dimension_counts, universe
from trace_insights.truth.filter_sql import compile_filter
from trace_insights.truth.models import Trace
from trace_insights.truth.pair_counts import pair_counts

router = APIRouter(prefix="/dimensions")


@router.post("/discovery", response_model=DimensionsDiscoveryResponse)
def discovery(body: InsightsRequest, request: Request) -> DimensionsDiscoveryResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False)
    families: dict[str, set[str]] = {}
    for dim, n in total(aggregates.counters(keys.occurrences)).items():
        split = stream.split(dim)
        if n > 0 and split is not None and not stream.is_overflow(dim):
            families.setdefault(split[1], set()).add(split[2])
    data = [
        _dimension(stream.describe(family, sorted(values)))
        for family, values in sorted(families.items())
    ]
    return DimensionsDiscoveryResponse(data=data, meta=context.meta(aggregates))


@router.post("/calculate-npmi", response_model=NpmiResponse)
def calculate_npmi(body: NpmiRequest, request: Request) -> NpmiResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False, finest=Resolution.HOUR)
    counts = Counts(aggregates)
    first = stream.request(body.dimension1.name, body.dimension1.parameters, counts.values_of)
    second = stream.request(body.dimension2.name, body.dimension2.parameters, counts.values_of)
    named = sorted({d for d in [*(first.terms or ()), *(second.terms or ())] if d != ALL})
    occurrences = counts.occurrences(named + _overflow_of(named))
    if _capped_out(named, occurrences):  # a value past a cap: the stream never saw it
        first, second = first.without_terms(), second.without_terms()
    if first.terms is not None and second.terms is not None:
        source = "stream"
        partners = [d for d in second.terms if d != ALL]
        c1 = count(first.terms, occurrences, counts.total)
        c2 = count(second.terms, occurrences, counts.total)
        both = joint(
            first.terms,
            second.terms,
            occurrences,
            lambda d: counts.partners(d, partners),
            counts.total,
        )
        n = counts.total
    else:
        source = "store"
        n, c1, c2, both = _from_truth(context, body.experiment_ids, aggregates, first, second)
    score = npmi(both, c1, c2, n)
    return NpmiResponse(
        dimension1=_counted(first, c1),
        dimension2=_counted(second, c2),
        intersection=IntersectionCount(count=both),
        total_count=n,
        correlation=CorrelationScore(
            npmi_score=finite(score.npmi),
            npmi_smoothed=finite(score.npmi_smoothed),
            strength=strength(score.npmi) if not math.isnan(score.npmi) else "Undefined",
        ),
        meta=context.meta(aggregates, source=source),  # type: ignore[arg-type]
    )


@router.post("/correlations", response_model=CorrelationsResponse)
def correlations(body: CorrelationsRequest, request: Request) -> CorrelationsResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False, finest=Resolution.HOUR)
    if body.filter_string:
        return _correlations_from_truth(context, body, aggregates)
    assert body.dimension is not None
    counts = Counts(aggregates)
    slice_ = stream.request(body.dimension.name, body.dimension.parameters, counts.values_of)
    if slice_.terms is None:
        raise invalid(
            f"dimension '{slice_.name}' {slice_.value}: correlations need a threshold the stream "
            f"counts (latency: {', '.join(map(str, stream.LATENCY_THRESHOLDS_MS))} ms; span "
            f"counts: {', '.join(map(str, stream.SPAN_COUNT_THRESHOLDS))})"
        )
    occurrences = counts.all_occurrences
    if _capped_out([d for d in slice_.terms if d != ALL], occurrences):
        raise invalid(
            f"{slice_.name} = {slice_.value!r} is past a cap (of the tag's values, or of tool "
            "names), so the stream does not count it apart; use calculate-filter-correlation "
            "with a filter string instead"
        )
    in_slice = count(slice_.terms, occurrences, counts.total)
    together = Figures()
    for dim, coefficient in slice_.terms.items():
        source = occurrences if dim == ALL else counts.partners(dim)
        for partner, n in source.items():
            together[partner] += coefficient * n
    partners = {p: (int(n), int(together.get(p, 0))) for p, n in occurrences.items()}
    return CorrelationsResponse(
        dimension=_counted(slice_, in_slice),
        total_count=counts.total,
        data=_ranked(partners, in_slice, counts.total, body, exclude=slice_.name),
        meta=context.meta(aggregates),
    )


def _ranked(
    partners: dict[str, tuple[int, int]],
    in_slice: int,
    total_count: int,
    body: CorrelationsRequest,
    exclude: str | None,
) -> list[Correlation]:
    """``partners``: dimension → (traces having it, of which in the slice); the top ``limit``
    by NPMI with at least ``min_support`` traces in common."""
    data = []
    for dimension, (n, both) in partners.items():
        partner = stream.partner(dimension)
        if (
            partner is None
            or n <= 0
            or both < body.min_support
            or partner.name == exclude
            or stream.is_overflow(dimension)
            or stream.SPAN_COUNT.duplicates_span_type(dimension)
        ):
            continue
        score = npmi(both, in_slice, n, total_count)
        data.append(
            Correlation(
                dimension=partner.name,
                value=partner.value,
                parameters=partner.parameters,
                filter_string=_filter_text(partner),
                npmi_score=finite(score.npmi),
                npmi_smoothed=finite(score.npmi_smoothed),
                trace_count=both,
                count=n,
                percentage_of_slice=100.0 * both / in_slice if in_slice else 0.0,
                percentage_of_total=100.0 * n / total_count if total_count else 0.0,
                strength=strength(score.npmi) if not math.isnan(score.npmi) else "Undefined",
            )
        )
    data.sort(
        key=lambda c: (
            -(c.npmi_score if c.npmi_score is not None else -2),
            -c.trace_count,
            c.dimension,
            c.value,
        )
    )
    return data[: body.limit]


def _correlations_from_truth(
    context: Context, body: CorrelationsRequest, aggregates: Aggregates
) -> CorrelationsResponse:
    """A filter-string slice: every dimension value of the window's traces, counted in and out
    of the slice by one grouped query over the source of truth."""
    dialect = context.engine.dialect.name
    in_slice = condition(body.filter_string or "", "filter_string", dialect, body.experiment_ids)
    selected = universe(
        in_slice,
        Trace.experiment_id.in_(body.experiment_ids),
        Trace.timestamp_ms >= aggregates.window.start_ms,
        Trace.timestamp_ms < aggregates.window.end_ms,
    )
    with context.engine.connect() as connection:
        partners = {
            row[0]: (int(row[1]), int(row[2] or 0))
            for row in connection.execute(dimension_counts(selected, dialect))
        }
    total_count, slice_count = partners.pop(ALL_ROWS, (0, 0))
    return CorrelationsResponse(
        dimension=DimensionCount(
            name="filter",
            value=body.filter_string or "",
            count=slice_count,
            filter_string=body.filter_string,
        ),
        total_count=total_count,
        data=_ranked(partners, slice_count, total_count, body, exclude=None),
        meta=context.meta(aggregates, source="store"),
    )


def _counted(requested: Requested, n: int) -> DimensionCount:
    return DimensionCount(
        name=requested.name, value=requested.value, count=n, filter_string=_filter_text(requested)
    )


def _filter_text(requested: Requested) -> str | None:
    try:
        return unparse(requested.as_filter())
    except Unwritable:
        return None


def _overflow_of(dimensions: list[str]) -> list[str]:
    """The dimensions ``_capped_out`` reads of the capped ones among ``dimensions``."""
    return sorted({d for dim in dimensions for d in stream.capped(dim) or ()})


def _capped_out(dimensions: list[str], occurrences: Figures) -> bool:
    """A tag value or tool name the stream never counted apart: none seen, while values past
    the cap were."""
    for dim in dimensions:
        pair = stream.capped(dim)
        if pair is not None and not occurrences.get(pair[0]) and occurrences.get(pair[1], 0) > 0:
            return True
    return False


def _from_truth(
    context: Context,
    experiment_ids: list[str],
    aggregates: Aggregates,
    first: Requested,
    second: Requested,
) -> tuple[int, int, int, int]:
    """(total, count 1, count 2, joint) in one query over the finalized traces of the window."""
    dialect = context.engine.dialect.name
    first_filter = compile_filter(first.as_filter(), dialect, experiment_ids)
    second_filter = compile_filter(second.as_filter(), dialect, experiment_ids)
    universe = [
        Trace.experiment_id.in_(experiment_ids),
        Trace.timestamp_ms >= aggregates.window.start_ms,
        Trace.timestamp_ms < aggregates.window.end_ms,
    ]
    with context.engine.connect() as connection:
        return pair_counts(connection, first_filter, second_filter, universe)


def _dimension(described: Described) -> Dimension:
    return Dimension(
        name=described.name,
        display_name=described.display_name,
        description=described.description,
        parameters=[
            DimensionParameter(name=p.name, type=p.type, enum_values=p.enum_values)
            for p in described.parameters
        ],
    )
