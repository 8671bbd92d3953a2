"""Experiments, the subset of MLflow's API the insights need. Experiments that appear in
ingested data are registered by the aggregator (without a name: their id stands in)."""

import json
import secrets
import time
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import IntegrityError

from trace_insights.api.context import Context
from trace_insights.api.errors import RESOURCE_ALREADY_EXISTS, ApiError, invalid, not_found
from trace_insights.api.mlflow import experiment_search
from trace_insights.api.mlflow.schemas import (
    CreateExperiment,
    CreateExperimentResponse,
    ExperimentInfo,
    GetExperimentResponse,
    SearchExperiments,
    SearchExperimentsResponse,
)
from trace_insights.truth.models import Experiment

router = APIRouter(prefix="/api/2.0/mlflow/experiments")


@router.post("/create", response_model=CreateExperimentResponse)
def create(body: CreateExperiment, request: Request) -> CreateExperimentResponse:
    context: Context = request.app.state.context
    name = body.name.strip()
    if not name:
        raise invalid("invalid value for 'name': must not be blank")
    # numeric ids as MLflow's, unique without coordination between API replicas
    experiment_id = str(int(time.time() * 1000) * 1000 + secrets.randbelow(1000))
    try:
        with context.engine.begin() as connection:
            connection.execute(
                sa.insert(Experiment).values(
                    experiment_id=experiment_id, name=name, created_ms=int(time.time() * 1000)
                )
            )
    except IntegrityError:
        raise ApiError(
            400, RESOURCE_ALREADY_EXISTS, f"an experiment named {name!r} already exists"
        ) from None
    return CreateExperimentResponse(experiment_id=experiment_id)


@router.get("/get", response_model=GetExperimentResponse)
def get(request: Request, experiment_id: str = Query(min_length=1)) -> GetExperimentResponse:
    context: Context = request.app.state.context
    with context.engine.connect() as connection:
        row = connection.execute(
            sa.select(Experiment).where(Experiment.experiment_id == experiment_id)
        ).first()
    if row is None:
        raise not_found(f"experiment {experiment_id!r} does not exist")
    return GetExperimentResponse(experiment=_info(row))


@router.get("/get-by-name", response_model=GetExperimentResponse)
def get_by_name(
    request: Request, experiment_name: str = Query(min_length=1)
) -> GetExperimentResponse:
    """An experiment the aggregator registered has no name: its id is its name."""
    context: Context = request.app.state.context
    named = sa.or_(
        Experiment.name == experiment_name,
        sa.and_(Experiment.name.is_(None), Experiment.experiment_id == experiment_name),
    )
    with context.engine.connect() as connection:
        query = sa.select(Experiment).where(named).order_by(Experiment.name.is_(None))
        row = connection.execute(query).first()
    if row is None:
        raise not_found(f"experiment {experiment_name!r} does not exist")
    return GetExperimentResponse(experiment=_info(row))


@router.get("/search", response_model=SearchExperimentsResponse)
def search_get(
    request: Request,
    max_results: int = Query(1000, ge=1, le=50_000),
    page_token: str | None = None,
    filter: str | None = Query(None, max_length=4_000),
    order_by: Annotated[list[str] | None, Query()] = None,
) -> SearchExperimentsResponse:
    body = SearchExperiments(
        max_results=max_results, page_token=page_token, filter=filter, order_by=order_by or []
    )
    return _search(request.app.state.context, body)


@router.post("/search", response_model=SearchExperimentsResponse)
def search_post(body: SearchExperiments, request: Request) -> SearchExperimentsResponse:
    return _search(request.app.state.context, body)


def _search(context: Context, body: SearchExperiments) -> SearchExperimentsResponse:
    """Keyset pages over the order (by id unless asked); a token continues only its query."""
    order = experiment_search.Order.of(body.order_by)
    query_key = json.dumps([body.filter or "", body.order_by])
    query = sa.select(Experiment).where(experiment_search.condition(body.filter))
    if body.page_token:
        query = query.where(order.after(body.page_token, query_key))
    query = query.order_by(*order.ordering()).limit(body.max_results + 1)
    with context.engine.connect() as connection:
        rows = list(connection.execute(query))
    more = len(rows) > body.max_results
    rows = rows[: body.max_results]
    return SearchExperimentsResponse(
        experiments=[_info(row) for row in rows],
        next_page_token=order.token(rows[-1], query_key) if more else None,
    )


def _info(row: sa.Row) -> ExperimentInfo:
    return ExperimentInfo(
        experiment_id=row.experiment_id,
        name=row.name or row.experiment_id,
        creation_time=row.created_ms,
    )
