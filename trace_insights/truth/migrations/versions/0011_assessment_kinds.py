"""Expectations beside feedback, and MLflow's overrides: ``assessments.kind``, ``valid``
(false once another assessment overrides it), ``overrides`` and ``details`` (MLflow's
assessment metadata). Existing rows are valid feedback, as they were counted.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from trace_insights.truth.models import Json

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="feedback")
        )
        batch.add_column(sa.Column("valid", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("overrides", sa.String(64), nullable=True))
        batch.add_column(sa.Column("details", Json, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        for column in ("details", "overrides", "valid", "kind"):
            batch.drop_column(column)
