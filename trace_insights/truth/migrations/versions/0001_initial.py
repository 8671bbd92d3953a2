"""Experiments, traces, spans, trace tags, assessments and their events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(64), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "open_traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_open_traces_idle", "open_traces", ["partition", "last_seen_ms"])
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("final_partition", sa.Integer, nullable=False),
        sa.Column("final_offset", sa.BigInteger, nullable=False),
        sa.Column("final_reason", sa.String(8), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("execution_time_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("root_name", sa.Text),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        sa.Column("span_count", sa.Integer, nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("assessments", Json, nullable=False),
    )
    op.create_index("ix_traces_experiment_timestamp", "traces", ["experiment_id", "timestamp_ms"])
    op.create_index("ix_traces_final", "traces", ["final_partition", "final_offset"])
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16)),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("span_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("start_time_ns", sa.BigInteger, nullable=False),
        sa.Column("end_time_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("tool_name", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("trace_tags", Json, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("src_partition", sa.Integer, nullable=False),
        sa.Column("src_offset", sa.BigInteger, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_index("ix_spans_source", "spans", ["src_partition", "src_offset"])
    op.create_index("ix_spans_experiment_type", "spans", ["experiment_id", "span_type"])
    op.create_index("ix_spans_name", "spans", ["name"])
    op.create_index("ix_spans_tool", "spans", ["tool_name"])
    op.create_index("ix_spans_model", "spans", ["model"])
    if postgres:
        op.create_index(
            "ix_spans_content_trgm",
            "spans",
            ["content"],
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
        )
    op.create_table(
        "trace_tags",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_trace_tags_key_value", "trace_tags", ["key", "value"])
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("value", Json),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source_id", sa.Text),
        sa.Column("rationale", sa.Text),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_assessments_trace_name", "assessments", ["trace_id", "name"])
    op.create_index("ix_assessments_experiment_name", "assessments", ["experiment_id", "name"])
    op.create_table(
        "assessment_events",
        sa.Column("src_partition", sa.Integer, primary_key=True),
        sa.Column("src_offset", sa.BigInteger, primary_key=True),
        sa.Column("assessment_id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("value", Json),
        sa.Column("previous", Json),
        sa.Column("deferred", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "assessment_events",
        "assessments",
        "trace_tags",
        "spans",
        "traces",
        "open_traces",
        "experiments",
    ):
        op.drop_table(table)
