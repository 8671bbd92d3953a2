"""The dimensions of a finalized trace: the facts whose occurrence and co-occurrence counts
make NPMI between any two of them computable from the aggregates.

Names are the keys of the aggregates and of the API: ``status=ERROR``, ``span.type=TOOL``,
``tools.web_search=used``, ``tools.web_search=error``, ``model=gpt-4o``,
``tags.environment=prod``, ``latency>1000`` (ms), ``count(span.type=LLM)>3``,
``assessment.correct=yes`` (added when feedback arrives).
"""

import json
from collections.abc import Callable, Iterable

from trace_insights.core.records import SpanRecord, TraceSummary

LATENCY_THRESHOLDS_MS = (100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
SPAN_COUNT_THRESHOLDS = (0, 1, 2, 3, 5, 10)
OTHER = "__other__"


def status(value: str) -> str:
    return f"status={value}"


def span_type(value: str) -> str:
    return f"span.type={value}"


def tool(name: str, outcome: str) -> str:
    return f"tools.{name}={outcome}"


def model(name: str) -> str:
    return f"model={name}"


def tag(key: str, value: str) -> str:
    return f"tags.{key}={value}"


def latency_above(threshold_ms: int) -> str:
    return f"latency>{threshold_ms}"


def span_count_above(kind: str, threshold: int) -> str:
    return f"count(span.type={kind})>{threshold}"


def assessment(name: str, value: object) -> str:
    """Strings as they are, other values (true, 4, 0.5) as JSON."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"assessment.{name}={shown}"


def of_trace(
    summary: TraceSummary,
    spans: Iterable[SpanRecord],
    tag_value: Callable[[str, str], str] = lambda key, value: value,
) -> set[str]:
    """``tag_value`` maps a tag value over the per-key cap to ``OTHER``."""
    dims = {status(summary.status)}
    type_counts: dict[str, int] = {}
    for span in spans:
        type_counts[span.span_type] = type_counts.get(span.span_type, 0) + 1
        if span.tool_name is not None:
            dims.add(tool(span.tool_name, "used"))
            if span.status == "ERROR":
                dims.add(tool(span.tool_name, "error"))
        if span.model is not None:
            dims.add(model(span.model))
    for kind, count in type_counts.items():
        dims.add(span_type(kind))
        dims.update(span_count_above(kind, t) for t in SPAN_COUNT_THRESHOLDS if count > t)
    dims.update(latency_above(t) for t in LATENCY_THRESHOLDS_MS if summary.execution_time_ms > t)
    dims.update(tag(key, tag_value(key, value)) for key, value in summary.tags.items())
    return dims
