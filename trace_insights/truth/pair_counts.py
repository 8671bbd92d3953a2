"""The four counts a correlation of two filters needs — the universe's traces, each filter's
and both's — in one pass over ``traces``."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.truth import dialects
from trace_insights.truth.filter_sql import Compiled
from trace_insights.truth.models import Trace

_BASE = 10**18  # a digit of the packed sum: no table holds that many traces


def pair_counts(
    connection: sa.Connection,
    first: Compiled,
    second: Compiled,
    universe: Sequence[ColumnElement[bool]],
    joined: Sequence[Compiled] = (),
) -> tuple[int, int, int, int]:
    """(total, first, second, joint) over the traces meeting ``universe``; ``joined``: other
    compiled filters the universe's conditions read."""
    packed = dialects.of(connection).packs_counts
    query = sa.select(*_counted(first.predicate, second.predicate, packed)).select_from(Trace)
    for compiled in (first, second, *joined):
        query = compiled.joined(query)
    row = connection.execute(query.where(*universe)).one()
    if not packed:
        total, c1, c2, joint = (int(v) for v in row)
        return total, c1, c2, joint
    total, digits = int(row[0]), int(row[1])
    return total, digits % _BASE, digits // _BASE % _BASE, digits // _BASE**2


def _counted(first: ColumnElement[bool], second: ColumnElement[bool], packed: bool) -> list[Any]:
    """On PostgreSQL the three filter counts are digits of one exact numeric sum, so each filter
    is evaluated once per trace instead of twice: a quarter off a correlation over a million
    traces. SQLite's integer sum would overflow, so it sums each count."""
    if packed:

        def digits(c1: int, c2: int, joint: int) -> Any:
            return sa.literal(c1 + c2 * _BASE + joint * _BASE**2, sa.Numeric)

        code = sa.case(
            (first, sa.case((second, digits(1, 1, 1)), else_=digits(1, 0, 0))),
            (second, digits(0, 1, 0)),
            else_=digits(0, 0, 0),
        )
        return [sa.func.count(), sa.func.coalesce(sa.func.sum(code), 0)]

    def hits(predicate: ColumnElement[bool]) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((predicate, 1), else_=0)), 0)

    return [sa.func.count(), hits(first), hits(second), hits(sa.and_(first, second))]
