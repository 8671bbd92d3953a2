"""Per-trace span counts kept on the trace row (``traces.span_stats``).

The common span conditions — a span type, a tool, a tool's errors, a model, error spans — are
answered from counts on the trace instead of joining millions of span rows: a filter over a
million traces then reads one table once. The counts cover every stored span of the trace, late
ones included (the writer recounts a trace when spans arrive after its finalization), so they
answer exactly what the span rows do.
"""

from collections import Counter
from collections.abc import Iterable

from trace_insights.core.filters import And, Comparison, Node
from trace_insights.core.records import ERROR

SpanFacts = tuple[str, str, str | None, str | None]  # type, status, tool name, model

SPAN_TYPE, TOOL, TOOL_ERROR, MODEL, ERROR_SPANS = "type", "tool", "tool_error", "model", "error"
_PER_VALUE = {"type": SPAN_TYPE, "tool_name": TOOL, "model": MODEL}


def count(spans: Iterable[SpanFacts]) -> dict[str, int]:
    stats: Counter[str] = Counter()
    for span_type, status, tool, model in spans:
        stats[f"{SPAN_TYPE}:{span_type}"] += 1
        if tool is not None:
            stats[f"{TOOL}:{tool}"] += 1
        if model is not None:
            stats[f"{MODEL}:{model}"] += 1
        if status == ERROR:
            stats[ERROR_SPANS] += 1
            if tool is not None:
                stats[f"{TOOL_ERROR}:{tool}"] += 1
    return dict(stats)


def counted_by(condition: Node) -> list[str] | None:
    """The stats whose sum counts a trace's spans meeting ``condition`` (a condition on one
    span); None when the stats cannot tell."""
    if _is_error(condition):
        return [ERROR_SPANS]
    if isinstance(condition, Comparison):
        prefix = _PER_VALUE.get(condition.key.name)
        values = _values(condition)
        return None if prefix is None or values is None else [f"{prefix}:{v}" for v in values]
    if isinstance(condition, And) and len(condition.operands) == 2:
        first, second = condition.operands
        for errors, tools in ((first, second), (second, first)):
            if (
                _is_error(errors)
                and isinstance(tools, Comparison)
                and (tools.key.name == "tool_name" and (values := _values(tools)) is not None)
            ):
                return [f"{TOOL_ERROR}:{v}" for v in values]
    return None


def _values(condition: Comparison) -> list[str] | None:
    """The values a span's own field must equal (``=`` or ``IN`` strings), once each."""
    if condition.key.attribute:
        return None
    if condition.operator == "=":
        values: tuple[object, ...] = (condition.value,)
    elif condition.operator == "IN" and isinstance(condition.value, tuple):
        values = tuple(dict.fromkeys(condition.value))  # a value listed twice counts once
    else:
        return None
    strings = [value for value in values if isinstance(value, str)]
    return strings if len(strings) == len(values) else None


def _is_error(condition: Node) -> bool:
    return (
        isinstance(condition, Comparison)
        and condition.key.name == "status"
        and not condition.key.attribute
        and condition.operator == "="
        and condition.value == ERROR
    )
