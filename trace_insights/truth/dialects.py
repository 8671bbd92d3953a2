"""What PostgreSQL and SQLite spell differently, in one place: every SQL expression that is not
the same on both comes from here, so the rest of the code never asks which database it is on.

SQLite is the embedded default and says only what it must; PostgreSQL adds what makes it fast
(an array parameter for long IN lists, COPY for bulk rows, a key test and JSON paths on JSONB,
one packed sum for three counts). Where a capability exists only on PostgreSQL, the SQLite
answer is None and the caller takes the portable path.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH
from sqlalchemy.sql.elements import ColumnElement

_NO_PATH: sa.ColumnClause[Any] = sa.literal_column("'{}'::text[]")  # ``jsonb #>> '{}'``


class Dialect:
    """SQLite's spelling; ``Postgres`` overrides what PostgreSQL spells otherwise."""

    name = "sqlite"
    json_numbers: tuple[str, ...] = ("integer", "real")  # JSON type names of a number
    json_booleans: tuple[str, ...] = ("true", "false")
    copies_rows = False  # bulk rows by COPY rather than executemany
    packs_counts = False  # three counts as digits of one exact numeric sum

    def insert(self, model: Any) -> Any:
        """An INSERT that takes ``on_conflict_do_nothing`` / ``_do_update``."""
        return sqlite.insert(model)

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        return sa.func.max(*values)

    def one_of(self, column: Any, values: list[str]) -> ColumnElement[bool]:
        matched: ColumnElement[bool] = column.in_(values)
        return matched

    def json_each(self, column: Any) -> Any:
        """(key, value) rows of a JSON object, the value as text."""
        return sa.func.json_each(column).table_valued("key", "value")

    def json_scalar(self, column: Any, path: str | None) -> tuple[Any, Any]:
        """(JSON type name, text of the scalar) of a JSON value or of its member ``path`` (no
        double quote in it); the text of true is 'true', of a string the string itself."""
        where = "$" if path is None else f'$."{path}"'
        kind = sa.func.json_type(column, where)
        text = sa.case(
            (kind == "true", "true"),
            (kind == "false", "false"),
            else_=sa.cast(sa.func.json_extract(column, where), sa.Text),
        )
        return kind, text

    def json_shown(self, column: Any, kind: Any, text: Any) -> Any:
        """A JSON value as the stream names it: a string bare, anything else as JSON text."""
        return sa.case((kind == "text", text), else_=sa.func.json(column))

    def json_member(self, column: Any, name: str) -> Any:
        """The text of a flat JSON object's member (a JSON path cannot name a member holding a
        double quote: that one is looked up among the object's members)."""
        if '"' not in name:
            return sa.func.json_extract(column, f'$."{name}"')
        members = self.json_each(column)
        return sa.select(members.c.value).where(members.c.key == name).scalar_subquery()

    def has_any_key(self, column: Any, names: list[str]) -> ColumnElement[bool] | None:
        return None

    def json_number_test(self, column: Any, name: str, path: str, value: float) -> Any:
        """``path`` (a JSON path comparing each of member ``name``'s values with ``$v``)."""
        return None


class Postgres(Dialect):
    name = "postgresql"
    json_numbers = ("number",)
    json_booleans = ("boolean",)
    copies_rows = True
    packs_counts = True

    def insert(self, model: Any) -> Any:
        return postgresql.insert(model)

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        return sa.func.greatest(*values)

    def one_of(self, column: Any, values: list[str]) -> ColumnElement[bool]:
        """One array parameter (``= ANY``): the same cost for 10 values or 10,000."""
        matched: ColumnElement[bool] = column == sa.any_(
            sa.cast(sa.literal(values, ARRAY(sa.Text)), ARRAY(sa.Text))
        )
        return matched

    def json_each(self, column: Any) -> Any:
        return sa.func.jsonb_each_text(column).table_valued("key", "value")

    def json_scalar(self, column: Any, path: str | None) -> tuple[Any, Any]:
        element = column if path is None else column.op("->")(path)
        return sa.func.jsonb_typeof(element), element.op("#>>")(_NO_PATH)

    def json_shown(self, column: Any, kind: Any, text: Any) -> Any:
        return sa.case((kind == "string", text), else_=sa.cast(column, sa.Text))

    def json_member(self, column: Any, name: str) -> Any:
        return column.op("->>")(name)

    def has_any_key(self, column: Any, names: list[str]) -> ColumnElement[bool] | None:
        """A key test on JSONB: it skips reading the values."""
        return sa.or_(*(column.op("?", is_comparison=True)(name) for name in names))

    def json_number_test(self, column: Any, name: str, path: str, value: float) -> Any:
        values = column.op("->", return_type=JSONB)(name)
        variables = sa.literal({"v": value}, JSONB)
        return sa.func.jsonb_path_exists(values, sa.cast(path, JSONPATH), variables)


_DIALECTS = {"sqlite": Dialect(), "postgresql": Postgres()}


def of(bind: sa.Connection | sa.Engine | str) -> Dialect:
    """The dialect of a connection, an engine, or a dialect's name."""
    name = bind if isinstance(bind, str) else bind.dialect.name
    return _DIALECTS[name]
