"""Execution times by MLflow's arithmetic (``core.records.trace_times``): the latest end and the
earliest start of a trace's counted (non-late) spans, each floored to whole ms, then
subtracted. Before, the difference was floored, one ms short of MLflow's figure for some traces.
Aggregates counted before the upgrade keep the old figure until ``trace-insights rebuild``.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_TRACES = sa.table(
    "traces", sa.column("trace_id", sa.String), sa.column("execution_time_ms", sa.BigInteger)
)
_SPANS = sa.table(
    "spans",
    sa.column("trace_id", sa.String),
    sa.column("start_time_ns", sa.BigInteger),
    sa.column("end_time_ns", sa.BigInteger),
    sa.column("late", sa.Boolean),
)
_NS_PER_MS = 1_000_000


def upgrade() -> None:
    counted = sa.and_(_SPANS.c.trace_id == _TRACES.c.trace_id, sa.not_(_SPANS.c.late))
    first = sa.select(sa.func.min(_SPANS.c.start_time_ns)).where(counted).scalar_subquery()
    last = sa.select(sa.func.max(_SPANS.c.end_time_ns)).where(counted).scalar_subquery()
    op.get_bind().execute(
        sa.update(_TRACES)
        .where(sa.exists().where(counted))
        .values(execution_time_ms=last // _NS_PER_MS - first // _NS_PER_MS)
    )


def downgrade() -> None:
    """The old figure is the new one or one ms less: it is not recoverable from the row, and
    the new one is the better of the two, so it stays."""
