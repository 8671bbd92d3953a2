"""Per-trace span counts (``traces.span_stats``), so common span filters read the trace row.

Revision ID: 0004
Revises: 0003
"""

from itertools import groupby

import sqlalchemy as sa
from alembic import op

from trace_insights.truth import span_stats
from trace_insights.truth.models import Json

revision = "0004"
down_revision = "0003"

_TRACES = sa.table("traces", sa.column("trace_id", sa.String), sa.column("span_stats", Json))
_SPANS = sa.table(
    "spans",
    sa.column("trace_id", sa.String),
    sa.column("span_type", sa.String),
    sa.column("status", sa.String),
    sa.column("tool_name", sa.Text),
    sa.column("model", sa.Text),
)
_CHUNK = 10_000


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("span_stats", Json, nullable=True))
    connection = op.get_bind()
    update = (
        sa.update(_TRACES)
        .where(_TRACES.c.trace_id == sa.bindparam("id"))
        .values(span_stats=sa.bindparam("stats"))
    )
    spans = _SPANS.c
    facts = sa.select(spans.trace_id, spans.span_type, spans.status, spans.tool_name, spans.model)
    rows = connection.execute(
        facts.order_by(spans.trace_id).execution_options(stream_results=True, yield_per=_CHUNK)
    )
    pending: list[dict[str, object]] = []
    for trace_id, group in groupby(rows, key=lambda row: row[0]):
        pending.append({"id": trace_id, "stats": span_stats.count(row[1:] for row in group)})
        if len(pending) >= _CHUNK:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("span_stats")
