"""Experiment names, for the MLflow-compatible experiments API.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("name", sa.String(256), nullable=True))
        batch.create_index("ux_experiments_name", ["name"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_index("ux_experiments_name")
        batch.drop_column("name")
