"""Assessment events by trace: a trace's history (``aggregator/truth/history.py``) reads the
assessment changes of each trace a batch touched.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_index("ix_assessment_events_trace", "assessment_events", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_assessment_events_trace", "assessment_events")
