"""Arbitrary questions over the source of truth: filter correlation and trace search, through
the one filter compiler (``trace_insights.truth.filter_sql``)."""

import base64
import binascii
import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.context import Context
from trace_insights.api.errors import invalid
from trace_insights.api.figures import finite
from trace_insights.api.filtering import condition
from trace_insights.api.mlflow.assessments import assessment_out
from trace_insights.api.mlflow.schemas import (
    FilterCorrelationRequest,
    FilterCorrelationV2,
    FilterCorrelationV3,
    SearchTraces,
    SearchTracesResponse,
)
from trace_insights.api.mlflow.wire import trace_info
from trace_insights.core.npmi import Npmi, npmi
from trace_insights.truth.filter_sql import Compiled
from trace_insights.truth.models import Assessment, Trace
from trace_insights.truth.pair_counts import pair_counts

v2 = APIRouter(prefix="/api/2.0/mlflow/traces")
v3 = APIRouter(prefix="/api/3.0/mlflow/traces")
_ORDERABLE = {
    "timestamp_ms": Trace.timestamp_ms,
    "execution_time_ms": Trace.execution_time_ms,
    "status": Trace.status,
    "name": Trace.root_name,
}


class Correlation:
    def __init__(self, c1: int, c2: int, joint: int, total: int) -> None:
        self.c1, self.c2, self.joint, self.total = c1, c2, joint, total
        self.score: Npmi = npmi(joint, c1, c2, total)


def correlate(context: Context, body: FilterCorrelationRequest) -> Correlation:
    """Counts of both filters, their intersection and the universe, in one query over the
    experiments' finalized traces; NPMI by the stream path's own function."""
    context.require_experiments(body.experiment_ids)
    dialect = context.engine.dialect.name
    scope = body.experiment_ids
    first = condition(body.filter_string1, "filter_string1", dialect, scope)
    second = condition(body.filter_string2, "filter_string2", dialect, scope)
    universe: list[sa.ColumnElement[bool]] = [Trace.experiment_id.in_(scope)]
    joined: list[Compiled] = []
    if body.base_filter:
        base = condition(body.base_filter, "base_filter", dialect, scope)
        joined.append(base)
        universe.append(base.predicate)
    if body.start_time is not None:
        universe.append(Trace.timestamp_ms >= body.start_time)
    if body.end_time is not None:
        universe.append(Trace.timestamp_ms < body.end_time)
    with context.engine.connect() as connection:
        total, c1, c2, joint = pair_counts(connection, first, second, universe, joined)
    return Correlation(c1, c2, joint, total)


@v2.post(
    "/calculate-filter-correlation",
    response_model=FilterCorrelationV2,
    response_model_exclude_none=True,
)
def correlation_v2(body: FilterCorrelationRequest, request: Request) -> FilterCorrelationV2:
    found = correlate(request.app.state.context, body)
    return FilterCorrelationV2(
        npmi=finite(found.score.npmi),
        npmi_smoothed=finite(found.score.npmi_smoothed),
        filter_string1_count=found.c1,
        filter_string2_count=found.c2,
        joint_count=found.joint,
        total_count=found.total,
    )


@v3.post(
    "/calculate-filter-correlation",
    response_model=FilterCorrelationV3,
    response_model_exclude_none=True,
)
def correlation_v3(body: FilterCorrelationRequest, request: Request) -> FilterCorrelationV3:
    found = correlate(request.app.state.context, body)
    return FilterCorrelationV3(
        npmi=finite(found.score.npmi),
        npmi_smoothed=finite(found.score.npmi_smoothed),
        filter1_count=found.c1,
        filter2_count=found.c2,
        joint_count=found.joint,
        total_count=found.total,
    )


@v3.post("/search", response_model=SearchTracesResponse)
def search(body: SearchTraces, request: Request) -> SearchTracesResponse:
    """Keyset pagination on (order column, trace id): every result is reachable, pages stay
    cheap however deep, and a token only continues the query it came from."""
    context: Context = request.app.state.context
    context.require_experiments(body.scope)
    column, descending = _order(body.order_by)
    query = sa.select(Trace).where(Trace.experiment_id.in_(body.scope))
    if body.start_time is not None:
        query = query.where(Trace.timestamp_ms >= body.start_time)
    if body.end_time is not None:
        query = query.where(Trace.timestamp_ms < body.end_time)
    if body.filter and body.filter.strip():
        dialect = context.engine.dialect.name
        compiled = condition(body.filter, "filter", dialect, body.scope)
        query = compiled.joined(query).where(compiled.predicate)
    if body.page_token:
        last_value, last_id = _token_values(body.page_token, body)
        after = (
            sa.tuple_(column, Trace.trace_id)
            < sa.tuple_(sa.literal(last_value), sa.literal(last_id))
            if descending
            else sa.tuple_(column, Trace.trace_id)
            > sa.tuple_(sa.literal(last_value), sa.literal(last_id))
        )
        query = query.where(after)
    ordering = (
        [column.desc(), Trace.trace_id.desc()]
        if descending
        else [column.asc(), Trace.trace_id.asc()]
    )
    query = query.order_by(*ordering).limit(body.max_results + 1)
    with context.engine.connect() as connection:
        rows = list(connection.execute(query))
        more = len(rows) > body.max_results
        rows = rows[: body.max_results]
        assessed: dict[str, list[Any]] = {}
        if rows:
            for row in connection.execute(
                sa.select(Assessment)
                .where(Assessment.trace_id.in_([r.trace_id for r in rows]))
                .order_by(Assessment.created_ms)
            ):
                assessed.setdefault(row.trace_id, []).append(assessment_out(row))
    traces = [trace_info(row, assessed.get(row.trace_id, [])) for row in rows]
    token = _token(rows[-1], body, column) if more else None
    return SearchTracesResponse(traces=traces, next_page_token=token)


def _order(order_by: list[str]) -> tuple[Any, bool]:
    if len(order_by) != 1:
        raise invalid("invalid value for 'order_by': give exactly one column")
    parts = order_by[0].split()
    name = parts[0] if parts else ""
    if (
        name not in _ORDERABLE
        or len(parts) > 2
        or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"))
    ):
        raise invalid(
            f"invalid value for 'order_by': {order_by[0]!r}; use one of "
            f"{', '.join(_ORDERABLE)}, optionally followed by ASC or DESC"
        )
    return _ORDERABLE[name], len(parts) == 2 and parts[1].upper() == "DESC"


def _fingerprint(body: SearchTraces) -> str:
    return json.dumps(
        [
            sorted(body.scope),
            body.filter or "",
            body.order_by,
            body.start_time,
            body.end_time,
        ]
    )


def _token(row: Any, body: SearchTraces, column: Any) -> str:
    state = {"v": getattr(row, column.key), "id": row.trace_id, "q": _fingerprint(body)}
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _token_values(token: str, body: SearchTraces) -> tuple[Any, str]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        value, trace_id, fingerprint = state["v"], state["id"], state["q"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("invalid value for 'page_token': not a token this API issued") from None
    if fingerprint != _fingerprint(body):
        raise invalid("invalid value for 'page_token': it belongs to another query")
    return value, trace_id
