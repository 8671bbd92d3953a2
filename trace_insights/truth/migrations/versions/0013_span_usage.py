"""A span's cache and reasoning token counts (``spans.usage``), by genai-prices' usage names;
spans stored before keep an empty object (their attributes still hold what was sent).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.truth.models import Json

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.add_column(sa.Column("usage", Json, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.drop_column("usage")
