"""Bulk writes of many rows: new rows, ``INSERT ... ON CONFLICT DO NOTHING``, and one column set
per row.

On PostgreSQL the rows are streamed with COPY: row formatting happens in psycopg's C code
instead of per-row parameter processing, several times cheaper per span. Rows that may exist
already go into a session-local staging table, then move with one INSERT ... SELECT ... ON
CONFLICT (a SQLAlchemy expression); new rows go straight into the table, without the staging
copy and the conflict checks (the costliest statements of the ingest path). The COPY command is
composed with ``psycopg.sql`` from the model's own table and column names — never from input.
Elsewhere (SQLite) it is one executemany.
"""

from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from psycopg import errors, sql

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
    _copy(connection, table, staging.name, rows)
    columns = [column.name for column in table.columns]
    statement = dialect.insert(table).from_select(columns, sa.select(staging))
    connection.execute(statement.on_conflict_do_nothing())
    connection.execute(sa.delete(staging))


def insert_new(connection: sa.Connection, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Rows whose keys no stored row has unless another writer raced this one (the spans of a
    trace the truth has never seen, a trace finalized here): copied straight into the table.
    Should a race have stored one meanwhile, a savepoint takes the rows back, and they go the
    conflict-ignoring way."""
    if not rows:
        return
    if not dialects.of(connection).copies_rows:
        insert_ignoring_conflicts(connection, model, rows)
        return
    table = _table_of(model)
    try:
        with connection.begin_nested():
            _copy(connection, table, table.name, rows)
    except errors.UniqueViolation:
        insert_ignoring_conflicts(connection, model, rows)


def _copy(
    connection: sa.Connection, table: sa.Table, into: str, rows: list[dict[str, Any]]
) -> None:
    """Stream ``rows`` of ``table`` into the table named ``into`` (itself, or its staging twin)."""
    columns = [column.name for column in table.columns]
    json_positions = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
    values = itemgetter(*columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(into), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cursor.copy(copy) as stream:
        for row in rows:
            fields = list(values(row))
            for position in json_positions:
                fields[position] = json_text.dumps(fields[position])
            stream.write_row(fields)
    cursor.close()


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
