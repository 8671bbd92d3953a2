"""Which span conditions the per-trace span stats answer, and which fall back to span rows."""

import pytest

from trace_insights.core.filters import Count, parse
from trace_insights.truth.span_stats import count, counted_by


def _condition(text: str):  # type: ignore[no-untyped-def]
    node = parse(text)
    return node.clause if isinstance(node, Count) else node


@pytest.mark.parametrize(
    ("text", "stats"),
    [
        ("span.type = 'TOOL'", ["type:TOOL"]),
        ("span.type IN ('LLM', 'CHAT_MODEL', 'LLM')", ["type:LLM", "type:CHAT_MODEL"]),
        ("span.tool_name = 'web_search'", ["tool:web_search"]),
        ("span.model = 'gpt-4o'", ["model:gpt-4o"]),
        ("span.status = 'ERROR'", ["error"]),
        ("count(span.tool_name = 'a' AND span.status = 'ERROR') > 0", ["tool_error:a"]),
        (
            "count(span.status = 'ERROR' AND span.tool_name IN ('a', 'b')) = 1",
            ["tool_error:a", "tool_error:b"],
        ),
        # what the stats do not hold: answered from the span rows
        ("span.type != 'TOOL'", None),
        ("span.type NOT IN ('TOOL')", None),
        ("span.status = 'OK'", None),
        ("span.name = 'web_search'", None),
        ("span.tool_name LIKE 'web%'", None),
        ("span.attributes.type = 'TOOL'", None),
        ("count(span.type = 'TOOL' AND span.status = 'ERROR') > 0", None),
        ("count(span.tool_name = 'a' OR span.status = 'ERROR') > 0", None),
    ],
)
def test_conditions_the_stats_count(text, stats):
    assert counted_by(_condition(text)) == stats


def test_stats_count_types_tools_models_and_errors():
    spans = [
        ("AGENT", "OK", None, None),
        ("TOOL", "ERROR", "a", None),
        ("TOOL", "OK", "a", None),
        ("LLM", "UNSET", None, "m"),
    ]
    assert count(spans) == {
        "type:AGENT": 1,
        "type:TOOL": 2,
        "type:LLM": 1,
        "tool:a": 2,
        "tool_error:a": 1,
        "error": 1,
        "model:m": 1,
    }
