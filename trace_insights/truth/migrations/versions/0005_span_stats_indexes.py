"""Drop the span indexes that span stats replaced: span type, tool and model conditions read
the trace row now, so these indexes only cost every span insert.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"

_REPLACED = {
    "ix_spans_experiment_type": ["experiment_id", "span_type"],
    "ix_spans_tool": ["tool_name"],
    "ix_spans_model": ["model"],
}


def upgrade() -> None:
    for name in _REPLACED:
        op.drop_index(name, table_name="spans")


def downgrade() -> None:
    for name, columns in _REPLACED.items():
        op.create_index(name, "spans", columns)
