"""Price overrides in the source of truth: what the API manages and every pricer reads."""

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from trace_insights.core.prices import Override, Prices
from trace_insights.truth.models import PriceOverride


def load(connection: sa.Connection) -> list[Override]:
    return [
        of_row(row)
        for row in connection.execute(sa.select(PriceOverride).order_by(PriceOverride.override_id))
    ]


def of_row(row: Any) -> Override:
    """An override of its ``price_overrides`` row."""
    return Override(
        id=row.override_id,
        model_pattern=row.model_pattern,
        provider=row.provider,
        prices={key: Decimal(value) for key, value in row.prices.items()},
        valid_from_ms=row.valid_from_ms,
    )


class CurrentPrices:
    """A pricer whose overrides are read in each batch's transaction, so an override the API
    wrote applies to the next batch; its caches are kept while the overrides stay the same."""

    def __init__(self) -> None:
        self._overrides: list[Override] = []
        self.prices = Prices()

    def read(self, connection: sa.Connection) -> Prices:
        overrides = load(connection)
        if overrides != self._overrides:
            self._overrides = overrides
            self.prices.replace(overrides)
        return self.prices
