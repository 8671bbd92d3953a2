"""What calls cost: each span's provider, cost (pico-USD) and what priced it; each trace's
cost and unpriced calls; price overrides. Spans stored before are unpriced until a rebuild
prices them (``trace-insights rebuild --reprice``).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.truth.models import Json

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.add_column(sa.Column("provider", sa.Text, nullable=True))
        batch.add_column(sa.Column("cost", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("priced_by", sa.Text, nullable=True))
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("cost", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0")
        )
    op.create_table(
        "price_overrides",
        sa.Column("override_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_pattern", sa.String(250), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("prices", Json, nullable=False),
        sa.Column("valid_from_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("price_overrides")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("unpriced_calls")
        batch.drop_column("cost")
    with op.batch_alter_table("spans") as batch:
        batch.drop_column("priced_by")
        batch.drop_column("cost")
        batch.drop_column("provider")
