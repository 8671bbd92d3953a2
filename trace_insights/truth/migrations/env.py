"""Alembic environment: runs on the connection ``trace_insights.truth.database.migrate`` passes."""

from alembic import context

from trace_insights.truth.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
