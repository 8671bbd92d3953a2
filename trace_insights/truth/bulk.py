"""Bulk writes of many rows: ``INSERT ... ON CONFLICT DO NOTHING``, and one column set per row.

On PostgreSQL the rows are streamed with COPY into a session-local staging table, then moved
with one INSERT ... SELECT (a SQLAlchemy expression): row formatting happens in psycopg's C
code instead of per-row parameter processing, several times cheaper per span. The COPY
command is composed with ``psycopg.sql`` from the model's own table and column names — never
from input. Elsewhere (SQLite) it is one executemany.
"""

from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from psycopg import sql

from trace_insights.truth import dialects, json_text
from trace_insights.truth.models import Base

_STAGING = sa.MetaData()


def _table_of(model: type[Base]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table)  # a declarative model maps one table
    return table


def insert_ignoring_conflicts(
    connection: sa.Connection, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    table = _table_of(model)
    dialect = dialects.of(connection)
    if not dialect.copies_rows:
        connection.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
        return
    staging = _staging(table)
    # checked each time: a batch rolled back also rolls back the staging table's creation
    staging.create(connection, checkfirst=True)
    columns = [column.name for column in table.columns]
    json_positions = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
    values = itemgetter(*columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(staging.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cursor.copy(copy) as stream:
        for row in rows:
            fields = list(values(row))
            for position in json_positions:
                fields[position] = json_text.dumps(fields[position])
            stream.write_row(fields)
    cursor.close()
    statement = dialect.insert(table).from_select(columns, sa.select(staging))
    connection.execute(statement.on_conflict_do_nothing())
    connection.execute(sa.delete(staging))


def set_each(
    connection: sa.Connection, model: type[Base], column: str, values: dict[str, Any]
) -> None:
    """``column`` of each row whose primary key (a single column) is a key of ``values``, set
    to its value: one executemany."""
    if not values:
        return
    table = _table_of(model)
    [key] = table.primary_key.columns
    update = sa.update(table).where(key == sa.bindparam("_key"))
    update = update.values({column: sa.bindparam("_value")})
    connection.execute(update, [{"_key": k, "_value": v} for k, v in values.items()])


def _staging(table: sa.Table) -> sa.Table:
    """A temporary twin of ``table`` without constraints, emptied at every commit."""
    name = f"staging_{table.name}"
    if name in _STAGING.tables:
        return _STAGING.tables[name]
    return sa.Table(
        name,
        _STAGING,
        *(sa.Column(column.name, column.type) for column in table.columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )
