"""Canonical span and trace records: what every convention is normalized into."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trace_insights.core import money
from trace_insights.core.trace_tags import overlay

SPAN_TYPES = (
    "LLM",
    "CHAT_MODEL",
    "TOOL",
    "RETRIEVER",
    "CHAIN",
    "AGENT",
    "EMBEDDING",
    "RERANKER",
    "PARSER",
    "MEMORY",
    "GUARDRAIL",
    "EVALUATOR",
    "UNKNOWN",
)

OK = "OK"
ERROR = "ERROR"
UNSET = "UNSET"


@dataclass(slots=True)
class SpanRecord:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    parent_span_id: str | None
    experiment_id: str
    name: str
    span_type: str
    status: str  # OK, ERROR or UNSET, from the OTLP status
    status_message: str
    start_time_ns: int
    end_time_ns: int
    tool_name: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    attributes: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)  # cache and reasoning tokens reported
    provider: str | None = None
    reported_cost: int | None = None  # pico-USD, as the sender reported it
    cost: int | None = None  # pico-USD, once priced (core/prices.py)
    priced_by: str | None = None  # what decided the cost: reported, an override, the table
    trace_tags: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6

    @property
    def is_root(self) -> bool:
        return not self.parent_span_id

    @property
    def needs_price(self) -> bool:
        """A call of a named model that used tokens: priced, or else an unpriced call."""
        return self.model is not None and bool(self.input_tokens or self.output_tokens)

    @property
    def unpriced(self) -> bool:
        return self.cost is None and self.needs_price


@dataclass(slots=True)
class TraceSummary:
    """Trace-level facts, computed once at finalization over the spans received by then."""

    trace_id: str
    experiment_id: str
    timestamp_ms: int  # earliest span start
    execution_time_ms: int  # latest end - earliest start, in whole ms (trace_times)
    status: str  # root span's: ERROR, else OK; IN_PROGRESS without a root
    root_name: str | None
    input_tokens: int
    output_tokens: int
    span_count: int
    tags: dict[str, str]
    cost: int | None = 0  # pico-USD over its priced spans; None past money.MAX_TRACE
    unpriced_calls: int = 0
    assessments: tuple[tuple[str, Any], ...] = ()  # (name, value) counted with the trace


IN_PROGRESS = "IN_PROGRESS"


def summarize(
    trace_id: str,
    experiment_id: str,
    spans: list[SpanRecord],
    edits: Sequence[tuple[str, str | None]] = (),
) -> TraceSummary:
    """MLflow's rules: timestamp = first start, duration = last end - first start, status from
    the root span (ERROR → ERROR, OK/UNSET → OK; no root → IN_PROGRESS). Tags: the root's
    first, then the other spans' by start, with the trace's tag ``edits`` laid over them."""
    timestamp_ms, execution_time_ms = trace_times(
        min(span.start_time_ns for span in spans), max(span.end_time_ns for span in spans)
    )
    root = next((span for span in spans if span.is_root), None)
    status = IN_PROGRESS if root is None else ERROR if root.status == ERROR else OK
    cost = sum(span.cost for span in spans if span.cost is not None)
    tags: dict[str, str] = {}
    for span in sorted(spans, key=lambda s: (not s.is_root, s.start_time_ns, s.span_id)):
        for key, value in span.trace_tags.items():
            tags.setdefault(key, value)
    return TraceSummary(
        trace_id=trace_id,
        experiment_id=experiment_id,
        timestamp_ms=timestamp_ms,
        execution_time_ms=execution_time_ms,
        status=status,
        root_name=root.name if root is not None else None,
        input_tokens=sum(span.input_tokens or 0 for span in spans),
        output_tokens=sum(span.output_tokens or 0 for span in spans),
        span_count=len(spans),
        tags=overlay(tags, edits),
        cost=money.trace_cost(cost),
        unpriced_calls=sum(span.unpriced for span in spans),
    )


def trace_times(start_ns: int, end_ns: int) -> tuple[int, int]:
    """(timestamp, execution time) in ms by MLflow's arithmetic, so that a filter such as
    ``trace.execution_time_ms > 2000`` matches the traces MLflow matches: the earliest start
    and the latest end are each floored to whole ms, then subtracted."""
    start_ms = start_ns // 1_000_000
    return start_ms, end_ns // 1_000_000 - start_ms
