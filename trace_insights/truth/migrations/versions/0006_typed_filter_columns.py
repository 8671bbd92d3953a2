"""Trace-row columns the common filters read without a join: span stats on every trace (an
empty object for none, so a key test alone decides), and each trace's current assessment
values by name (``traces.current_assessments``).

Revision ID: 0006
Revises: 0005
"""

from itertools import groupby

import sqlalchemy as sa
from alembic import op

from trace_insights.core.assessments import by_name
from trace_insights.truth.models import Json

revision = "0006"
down_revision = "0005"

_TRACES = sa.table(
    "traces",
    sa.column("trace_id", sa.String),
    sa.column("span_stats", Json),
    sa.column("current_assessments", Json),
)
_ASSESSMENTS = sa.table(
    "assessments",
    sa.column("assessment_id", sa.String),
    sa.column("trace_id", sa.String),
    sa.column("name", sa.String),
    sa.column("value", Json),
)
_CHUNK = 10_000


def upgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        sa.update(_TRACES).where(_TRACES.c.span_stats.is_(None)).values(span_stats={})
    )
    with op.batch_alter_table("traces") as batch:
        batch.alter_column("span_stats", existing_type=Json, nullable=False)
        batch.add_column(
            sa.Column("current_assessments", Json, nullable=False, server_default="{}")
        )
    update = (
        sa.update(_TRACES)
        .where(_TRACES.c.trace_id == sa.bindparam("id"))
        .values(current_assessments=sa.bindparam("values"))
    )
    a = _ASSESSMENTS.c
    values = sa.select(a.trace_id, a.name, a.value).order_by(a.trace_id, a.assessment_id)
    rows = connection.execute(values.execution_options(stream_results=True, yield_per=_CHUNK))
    pending: list[dict[str, object]] = []
    for trace_id, group in groupby(rows, key=lambda row: row[0]):
        pending.append({"id": trace_id, "values": by_name(row[1:] for row in group)})
        if len(pending) >= _CHUNK:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)
    with op.batch_alter_table("traces") as batch:
        batch.alter_column("current_assessments", existing_type=Json, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("current_assessments")
        batch.alter_column("span_stats", existing_type=Json, nullable=True)
