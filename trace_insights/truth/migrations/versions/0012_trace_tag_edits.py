"""Trace tags set or removed after the spans (``trace_tag_edits``): MLflow's set_trace_tag,
delete_trace_tag and the tags its client sends when a trace ends.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "trace_tag_edits",
        sa.Column("src_partition", sa.Integer, primary_key=True),
        sa.Column("src_offset", sa.BigInteger, primary_key=True),
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
    )
    op.create_index("ix_trace_tag_edits_trace", "trace_tag_edits", ["trace_id"])


def downgrade() -> None:
    op.drop_table("trace_tag_edits")
