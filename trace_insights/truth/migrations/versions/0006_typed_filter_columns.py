"""Columns that let the common filters skip parsing JSON per row: every trace has span stats
(an empty object for none, so a key test alone decides), and each assessment keeps its value
as a float when it is a number, indexed with its name so a feedback filter reads the index alone.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.core.assessments import number
from trace_insights.truth.models import Json

revision = "0006"
down_revision = "0005"

_TRACES = sa.table("traces", sa.column("span_stats", Json))
_ASSESSMENTS = sa.table(
    "assessments",
    sa.column("assessment_id", sa.String),
    sa.column("value", Json),
    sa.column("number", sa.Float),
)
_CHUNK = 10_000


def upgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        sa.update(_TRACES).where(_TRACES.c.span_stats.is_(None)).values(span_stats={})
    )
    with op.batch_alter_table("traces") as batch:
        batch.alter_column("span_stats", existing_type=Json, nullable=False)
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("number", sa.Float, nullable=True))
    update = (
        sa.update(_ASSESSMENTS)
        .where(_ASSESSMENTS.c.assessment_id == sa.bindparam("id"))
        .values(number=sa.bindparam("n"))
    )
    values = sa.select(_ASSESSMENTS.c.assessment_id, _ASSESSMENTS.c.value)
    rows = connection.execute(values.execution_options(stream_results=True, yield_per=_CHUNK))
    pending: list[dict[str, object]] = []
    for assessment_id, value in rows:
        if number(value) is not None:
            pending.append({"id": assessment_id, "n": number(value)})
        if len(pending) >= _CHUNK:
            connection.execute(update, pending)
            pending = []
    if pending:
        connection.execute(update, pending)
    op.drop_index("ix_assessments_experiment_name", table_name="assessments")
    op.create_index(
        "ix_assessments_experiment_name_number",
        "assessments",
        ["experiment_id", "name", "number"],
        postgresql_include=["trace_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_assessments_experiment_name_number", table_name="assessments")
    op.create_index("ix_assessments_experiment_name", "assessments", ["experiment_id", "name"])
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("number")
    with op.batch_alter_table("traces") as batch:
        batch.alter_column("span_stats", existing_type=Json, nullable=True)
