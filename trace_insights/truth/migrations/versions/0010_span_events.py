"""Span event names (``spans.events``), shown with a span in the trace view; spans stored
before keep an empty list (their event names are still in ``content`` for search).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.truth.models import Json

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.add_column(sa.Column("events", Json, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.drop_column("events")
