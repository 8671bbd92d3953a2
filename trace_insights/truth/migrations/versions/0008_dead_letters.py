"""Dead letters: topic records the aggregator could not apply for their content.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("src_partition", sa.Integer, primary_key=True),
        sa.Column("src_offset", sa.BigInteger, primary_key=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("recorded_ms", sa.BigInteger, nullable=False),
        sa.Column("replay_requested_ms", sa.BigInteger),
        sa.Column("replayed_ms", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
