"""The source of truth: SQLAlchemy models for PostgreSQL (and SQLite in the embedded mode).

Every span row remembers the Kafka partition and offset of its first delivery, and every
finalized trace the offset of the batch that finalized it. The aggregates a batch owes are
therefore a function of the rows and the batch's offset range, whichever attempt wrote them:
that is what makes a replay after a crash apply each delta exactly once.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from trace_insights.core.assessments import FEEDBACK

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class Experiment(Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    name: Mapped[str | None] = mapped_column(sa.String(256))  # None: registered from data

    __table_args__ = (sa.Index("ux_experiments_name", "name", unique=True),)


class OpenTrace(Base):
    """A trace still being assembled: which partition sees it, and when (stream time)."""

    __tablename__ = "open_traces"

    trace_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    partition: Mapped[int] = mapped_column(sa.Integer)
    first_seen_ms: Mapped[int] = mapped_column(sa.BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.Index("ix_open_traces_idle", "partition", "last_seen_ms"),)


class Trace(Base):
    """A finalized trace; written once (the first finalization wins)."""

    __tablename__ = "traces"

    trace_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    final_partition: Mapped[int] = mapped_column(sa.Integer)
    final_offset: Mapped[int] = mapped_column(sa.BigInteger)
    final_reason: Mapped[str] = mapped_column(sa.String(8))  # root | idle
    timestamp_ms: Mapped[int] = mapped_column(sa.BigInteger)
    execution_time_ms: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(16))
    root_name: Mapped[str | None] = mapped_column(sa.Text)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    total_tokens: Mapped[int] = mapped_column(sa.BigInteger)
    span_count: Mapped[int] = mapped_column(sa.Integer)
    # pico-USD, the sum over its priced spans (None past a bigint); calls no price was found for
    cost: Mapped[int | None] = mapped_column(sa.BigInteger)
    unpriced_calls: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    tags: Mapped[dict[str, str]] = mapped_column(Json)
    span_stats: Mapped[dict[str, int]] = mapped_column(Json)  # truth/span_stats.py
    assessments: Mapped[list[list[Any]]] = mapped_column(Json)  # [name, value] at finalization
    # name → values of its assessments now, kept current by the writer: what filters read
    current_assessments: Mapped[dict[str, list[Any]]] = mapped_column(Json)

    __table_args__ = (
        sa.Index("ix_traces_experiment_timestamp", "experiment_id", "timestamp_ms"),
        sa.Index("ix_traces_final", "final_partition", "final_offset"),
    )


class Span(Base):
    __tablename__ = "spans"

    trace_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    span_id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(sa.String(16))
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.Text)
    span_type: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(8))
    status_message: Mapped[str] = mapped_column(sa.Text, default="")
    start_time_ns: Mapped[int] = mapped_column(sa.BigInteger)
    end_time_ns: Mapped[int] = mapped_column(sa.BigInteger)
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    tool_name: Mapped[str | None] = mapped_column(sa.Text)
    model: Mapped[str | None] = mapped_column(sa.Text)
    input_tokens: Mapped[int | None] = mapped_column(sa.BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(sa.BigInteger)
    attributes: Mapped[dict[str, Any]] = mapped_column(Json)
    events: Mapped[list[str]] = mapped_column(Json, server_default="[]")  # event names
    # cache and reasoning tokens, by genai-prices' usage names (core/conventions.py)
    usage: Mapped[dict[str, int]] = mapped_column(Json, server_default="{}")
    provider: Mapped[str | None] = mapped_column(sa.Text)
    cost: Mapped[int | None] = mapped_column(sa.BigInteger)  # pico-USD (core/money.py)
    priced_by: Mapped[str | None] = mapped_column(sa.Text)  # reported, override <id>, the table
    trace_tags: Mapped[dict[str, str]] = mapped_column(Json)
    content: Mapped[str] = mapped_column(sa.Text)  # for span.content searches
    src_partition: Mapped[int] = mapped_column(sa.Integer)
    src_offset: Mapped[int] = mapped_column(sa.BigInteger)
    late: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    __table_args__ = (
        sa.Index("ix_spans_source", "src_partition", "src_offset"),
        sa.Index("ix_spans_name", "name"),
        sa.Index(
            "ix_spans_content_trgm",
            "content",
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )


def unpriced_call() -> sa.ColumnElement[bool]:
    """``SpanRecord.unpriced`` in SQL: a call of a named model that used tokens, with no cost."""
    return sa.and_(
        Span.cost.is_(None),
        Span.model.is_not(None),
        sa.or_(
            sa.func.coalesce(Span.input_tokens, 0) > 0,
            sa.func.coalesce(Span.output_tokens, 0) > 0,
        ),
    )


class PriceOverride(Base):
    """A price for custom, fine-tuned, self-hosted or negotiated models (core/prices.py):
    ``prices`` maps genai-prices' price keys to USD as decimal strings."""

    __tablename__ = "price_overrides"

    override_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_pattern: Mapped[str] = mapped_column(sa.String(250))
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    prices: Mapped[dict[str, str]] = mapped_column(Json)
    valid_from_ms: Mapped[int] = mapped_column(sa.BigInteger)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)


class Assessment(Base):
    """Feedback or an expectation on a trace, its current value; arrives on the span topic
    (see ``trace_insights.core.assessments``). Only valid feedback is counted."""

    __tablename__ = "assessments"

    assessment_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    trace_id: Mapped[str] = mapped_column(sa.String(32))
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(250))
    value: Mapped[Any] = mapped_column(Json, nullable=True)  # as migrated
    source_type: Mapped[str] = mapped_column(sa.String(16))
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    rationale: Mapped[str | None] = mapped_column(sa.Text)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    updated_ms: Mapped[int] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(16), server_default="feedback")
    valid: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())  # not overridden
    overrides: Mapped[str | None] = mapped_column(sa.String(64))  # the assessment it replaced
    details: Mapped[dict[str, str]] = mapped_column(Json, server_default="{}")  # MLflow metadata

    @classmethod
    def counted(cls) -> sa.ColumnElement[bool]:
        """The rows the aggregates count: valid feedback."""
        return sa.and_(cls.kind == FEEDBACK, cls.valid)

    __table_args__ = (
        sa.Index("ix_assessments_trace_name", "trace_id", "name"),
        sa.Index("ix_assessments_experiment_name", "experiment_id", "name"),
    )


class AssessmentEvent(Base):
    """One delivery of an assessment: what it changed, and whether its trace was finalized
    then (else the trace's finalization counts the assessment's value at that time)."""

    __tablename__ = "assessment_events"

    src_partition: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    src_offset: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    assessment_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    trace_id: Mapped[str] = mapped_column(sa.String(32))
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(250))
    value: Mapped[Any] = mapped_column(Json, nullable=True)  # as migrated
    previous: Mapped[list[Any] | None] = mapped_column(Json)  # [name, value] it replaced
    deferred: Mapped[bool] = mapped_column(sa.Boolean)

    __table_args__ = (sa.Index("ix_assessment_events_trace", "trace_id"),)


class TraceTagEdit(Base):
    """A trace tag set (``value``) or removed (null) after the spans, one row per delivery
    (``core.trace_tags``); a trace's tags are its spans' with its edits laid over them in
    offset order."""

    __tablename__ = "trace_tag_edits"

    src_partition: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    src_offset: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    trace_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(250), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (sa.Index("ix_trace_tag_edits_trace", "trace_id"),)


class AlertRule(Base):
    """A rule over the aggregates; ``state`` changes by compare-and-set on ``version``, so
    several evaluators (API replicas) never notify twice."""

    __tablename__ = "alert_rules"

    rule_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(250))
    experiment_ids: Mapped[list[str]] = mapped_column(Json)
    metric: Mapped[str] = mapped_column(sa.String(40))
    parameters: Mapped[dict[str, Any]] = mapped_column(Json)
    window_s: Mapped[int] = mapped_column(sa.Integer)
    comparator: Mapped[str] = mapped_column(sa.String(2))
    threshold: Mapped[float] = mapped_column(sa.Float)
    min_traces: Mapped[int] = mapped_column(sa.Integer)
    baseline: Mapped[str | None] = mapped_column(sa.String(8))  # day | week: a change rule
    webhooks: Mapped[list[str]] = mapped_column(Json)
    secret: Mapped[str] = mapped_column(sa.String(128))
    cooldown_s: Mapped[int] = mapped_column(sa.Integer)
    slack: Mapped[bool] = mapped_column(sa.Boolean)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    state: Mapped[str] = mapped_column(sa.String(8))  # ok | firing
    state_since_ms: Mapped[int] = mapped_column(sa.BigInteger)
    last_value: Mapped[float | None] = mapped_column(sa.Float)
    last_evaluated_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_notified_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    version: Mapped[int] = mapped_column(sa.Integer)


class AlertDelivery(Base):
    """One webhook notification: written with the state change it announces (an outbox)."""

    __tablename__ = "alert_deliveries"

    delivery_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    rule_id: Mapped[str] = mapped_column(sa.String(40))
    event: Mapped[str] = mapped_column(sa.String(8))  # firing | resolved
    target: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(10))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(sa.Integer)
    next_attempt_ms: Mapped[int] = mapped_column(sa.BigInteger)
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_ms: Mapped[int | None] = mapped_column(sa.BigInteger)

    __table_args__ = (
        sa.Index("ix_alert_deliveries_rule", "rule_id", "created_ms"),
        sa.Index("ix_alert_deliveries_due", "status", "next_attempt_ms"),
    )


class DeadLetter(Base):
    """A topic record the aggregator could not apply because of what it holds (not an
    outage): kept whole with the reason, so the partition goes on and nothing is lost; listed
    and replayed by ``trace-insights dead-letters``."""

    __tablename__ = "dead_letters"

    src_partition: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    src_offset: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    stage: Mapped[str] = mapped_column(sa.String(16))  # decode | truth | aggregates
    error: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    recorded_ms: Mapped[int] = mapped_column(sa.BigInteger)
    replay_requested_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    replayed_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
