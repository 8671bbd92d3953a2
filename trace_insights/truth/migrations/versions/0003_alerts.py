"""Alert rules and their webhook deliveries (an outbox: written with the state change).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("rule_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("experiment_ids", Json, nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("parameters", Json, nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("comparator", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("min_traces", sa.Integer, nullable=False),
        sa.Column("baseline", sa.String(8)),
        sa.Column("webhooks", Json, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("cooldown_s", sa.Integer, nullable=False),
        sa.Column("slack", sa.Boolean, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("state_since_ms", sa.BigInteger, nullable=False),
        sa.Column("last_value", sa.Float),
        sa.Column("last_evaluated_ms", sa.BigInteger),
        sa.Column("last_notified_ms", sa.BigInteger),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.String(40), primary_key=True),
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(8), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("response_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_ms", sa.BigInteger),
    )
    op.create_index("ix_alert_deliveries_rule", "alert_deliveries", ["rule_id", "created_ms"])
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_ms"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_rules")
