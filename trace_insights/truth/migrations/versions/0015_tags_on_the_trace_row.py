"""A trace's tags live on its row only (``traces.tags``): the ``trace_tags`` table, one row per
tag, was written at every finalization and read by no filter on PostgreSQL (tag conditions read
the trace row), and its rows and two indexes cost PostgreSQL a seventh of its ingest CPU
(docs/benchmarks.md). A downgrade fills it again from the trace rows.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.truth import dialects

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.drop_index("ix_trace_tags_key_value", table_name="trace_tags")
    op.drop_table("trace_tags")


def downgrade() -> None:
    tags = op.create_table(
        "trace_tags",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_trace_tags_key_value", "trace_tags", ["key", "value"])
    connection = op.get_bind()
    traces = sa.table("traces", sa.column("trace_id"), sa.column("tags"))
    members = dialects.of(connection).json_each(traces.c.tags)
    rows = sa.select(traces.c.trace_id, members.c.key, members.c.value).select_from(
        traces.join(members, sa.true())
    )
    connection.execute(sa.insert(tags).from_select(["trace_id", "key", "value"], rows))
