"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from trace_insights.truth.models import Base


def test_migrations_match_the_models(truth_engine):
    dialect = truth_engine.dialect.name

    def on_this_dialect(item: Any, name: Any, kind: str, reflected: bool, other: Any) -> bool:
        only = getattr(item, "_ddl_if", None)  # an index only some databases get
        return only is None or only.dialect in (None, dialect)

    with truth_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": False, "include_object": on_this_dialect}
        )
        assert compare_metadata(context, Base.metadata) == []
