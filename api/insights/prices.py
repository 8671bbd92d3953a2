"""``/insights/prices``: price overrides (create, list, read, delete) and quotes.

An override is never edited: a new price from a date is a new override valid from then, so
every past cost stays explained by the override that priced it. Aggregators read overrides in
each batch; costs already stored change only through ``trace-insights rebuild --reprice``.
"""

import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.context import Context
from trace_insights.api.errors import not_found
from trace_insights.api.mlflow.schemas import Deleted
from trace_insights.api.schemas import (
    OverrideId,
    PriceIn,
    PriceOut,
    PricesOut,
    Quote,
    QuoteIn,
)
from trace_insights.core import money, storable
from trace_insights.core.prices import Prices, call
from trace_insights.truth import price_overrides
from trace_insights.truth.models import PriceOverride

router = APIRouter(prefix="/prices")


def _context(request: Request) -> Context:
    return request.app.state.context


@router.post("", response_model=PriceOut)
def create(body: PriceIn, request: Request) -> PriceOut:
    row = {
        "model_pattern": storable.text(body.model_pattern),
        "provider": body.provider.lower() if body.provider else None,
        "prices": {key: format(value, "f") for key, value in body.prices.items()},
        "valid_from_ms": body.valid_from_ms,
        "created_ms": int(time.time() * 1000),
    }
    with _context(request).engine.begin() as connection:
        override_id = connection.execute(
            sa.insert(PriceOverride).values(row).returning(PriceOverride.override_id)
        ).scalar_one()
    return PriceOut(override_id=override_id, **row)


@router.get("", response_model=PricesOut)
def list_overrides(request: Request) -> PricesOut:
    with _context(request).engine.connect() as connection:
        rows = connection.execute(sa.select(PriceOverride).order_by(PriceOverride.override_id))
        return PricesOut(overrides=[_out(row) for row in rows])


@router.get("/{override_id}", response_model=PriceOut)
def get(override_id: OverrideId, request: Request) -> PriceOut:
    with _context(request).engine.connect() as connection:
        return _out(_row(connection, override_id))


@router.delete("/{override_id}", response_model=Deleted)
def delete(override_id: OverrideId, request: Request) -> Deleted:
    with _context(request).engine.begin() as connection:
        _row(connection, override_id)
        connection.execute(sa.delete(PriceOverride).where(PriceOverride.override_id == override_id))
    return Deleted()


@router.post("/quote", response_model=Quote)
def quote(body: QuoteIn, request: Request) -> Quote:
    """What a call would cost, priced as an aggregator prices a span now."""
    with _context(request).engine.connect() as connection:
        prices = Prices(price_overrides.load(connection))
    at_ns = (body.time_ms if body.time_ms is not None else int(time.time() * 1000)) * 1_000_000
    span = call(
        body.model,
        body.provider.lower() if body.provider else None,
        body.input_tokens,
        body.output_tokens,
        {key: n for key, n in body.usage.items() if n},
        at_ns,
    )
    prices.price([span])
    return Quote(
        cost=money.text(span.cost) if span.cost is not None else None,
        currency=money.CURRENCY,
        priced_by=span.priced_by,
    )


def _row(connection: sa.Connection, override_id: int) -> Any:
    row = connection.execute(
        sa.select(PriceOverride).where(PriceOverride.override_id == override_id)
    ).first()
    if row is None:
        raise not_found(f"no price override {override_id}")
    return row


def _out(row: Any) -> PriceOut:
    override = price_overrides.of_row(row)
    return PriceOut(
        override_id=override.id,
        model_pattern=override.model_pattern,
        provider=override.provider,
        prices={key: format(value, "f") for key, value in override.prices.items()},
        valid_from_ms=override.valid_from_ms,
        created_ms=row.created_ms,
    )
