"""``tags``: trace tag keys in a range, and the distribution of one key's values (values past
the per-key cap are counted together as ``__other__`` and reported as overflow)."""

from fastapi import APIRouter, Request

from trace_insights.api.aggregates import KeyOf, total
from trace_insights.api.context import Context
from trace_insights.api.errors import not_found
from trace_insights.api.figures import cost_meta, model_costs, tag_costs
from trace_insights.api.schemas import (
    InsightsRequest,
    Overflow,
    TagDiscoveryResponse,
    TagInfo,
    TagMetricsRequest,
    TagMetricsResponse,
    TagValueCount,
)
from trace_insights.core import keys, money
from trace_insights.core.dimensions import OTHER
from trace_insights.core.keys import fields

router = APIRouter(prefix="/tags")


@router.post("/discovery", response_model=TagDiscoveryResponse)
def discovery(body: InsightsRequest, request: Request) -> TagDiscoveryResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False)
    counts = total(aggregates.counters(keys.bucket))
    data = []
    for name, value in counts.items():
        key = fields.parse_tag_key(name)
        if key is None or value <= 0:
            continue
        distinct = aggregates.distinct(_distinct_of(key))
        data.append(TagInfo(tag_key=key, trace_count=int(value), unique_values=distinct))
    data.sort(key=lambda tag: (-tag.trace_count, tag.tag_key))
    return TagDiscoveryResponse(data=data, meta=context.meta(aggregates))


@router.post("/metrics", response_model=TagMetricsResponse)
def metrics(body: TagMetricsRequest, request: Request) -> TagMetricsResponse:
    context: Context = request.app.state.context
    aggregates = context.aggregates(body, series=False)
    key = body.tag_key
    buckets = total(aggregates.counters(keys.bucket))
    traces = int(buckets[fields.tag_key(key)])
    if not traces:
        raise not_found(f"no trace has the tag {key!r} in the range")
    values = total(aggregates.counters(lambda e, r, s: keys.tag_values(e, r, s, key)))
    costs, unpriced = tag_costs(
        total(aggregates.counters(lambda e, r, s: keys.tag_cost(e, r, s, key)))
    )
    other = int(values.pop(OTHER, 0))
    ranked = sorted(
        ((value, int(n)) for value, n in values.items() if n > 0),
        key=lambda item: (-item[1], item[0]),
    )
    if body.limit is not None:
        ranked = ranked[: body.limit]
    overflow = [Overflow(tag_key=key, other_count=other)] if other else []
    return TagMetricsResponse(
        summary=TagInfo(
            tag_key=key,
            trace_count=traces,
            unique_values=aggregates.distinct(lambda e, r, s: keys.tag_distinct(e, r, s, key)),
        ),
        data=[
            TagValueCount(
                value=v,
                count=n,
                percentage=100.0 * n / traces,
                cost=money.shown(costs.get(v, 0), unpriced.get(v, 0)),
                unpriced_calls=unpriced.get(v, 0),
            )
            for v, n in ranked
        ],
        meta=cost_meta(context.meta(aggregates, overflow=overflow), model_costs(buckets)),
    )


def _distinct_of(tag: str) -> KeyOf:
    return lambda e, r, s: keys.tag_distinct(e, r, s, tag)
