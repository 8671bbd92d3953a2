"""The filter language's parser: every documented form, and a clear error for each mistake."""

import pytest

from trace_insights.core.filters import (
    MAX_CHARS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    And,
    Comparison,
    Count,
    Key,
    Not,
    Or,
    ParseError,
    parse,
)

EXAMPLES = [
    "span.type = 'LLM'",
    "span.name LIKE '%retry%'",
    "span.status = 'ERROR'",
    "span.attributes['model_name'] = 'gpt-4'",
    "span.attributes.cache_hit = 'true'",
    "count(span.type = 'LLM') > 3",
    "count(span.name LIKE '%embed%') >= 2",
    "count(span.status = 'ERROR') = 0",
    "trace.execution_time_ms > 5000",
    "trace.status = 'OK'",
    "tags.environment = 'production'",
    "tags.`deployment.environment` != 'dev'",
    "feedback.quality >= 0.8",
    "feedback.user_rating > 4",
    "assessment.accuracy = 'correct'",
    "trace.timestamp_ms >= 1735689600000",
    "span.content ILIKE '%timeout%'",
    "count(span.type = 'EMBEDDING') > 5 OR "
    "(tags.query_type = 'complex' AND NOT trace.status = 'OK')",
    "span.type IN ('LLM', 'CHAT_MODEL')",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_documented_example_parses(text):
    parse(text)


def test_structure_and_precedence():
    node = parse(
        "NOT a.b = 1 OR span.type = 'X' AND tags.k = 'v'".replace("a.b", "trace.span_count")
    )
    assert isinstance(node, Or)
    assert isinstance(node.operands[0], Not)
    assert isinstance(node.operands[1], And)
    count = parse('count(span.type = "LLM") >= 2')
    assert count == Count(Comparison(Key("span", "type"), "=", "LLM"), ">=", 2)
    assert parse("span.attributes.`llm.model` = 'x'").key == Key("span", "llm.model", True)
    assert parse("span.attributes.llm.model = 'x'").key == Key("span", "llm.model", True)
    assert parse("tags.k = 'it''s'").value == "it's"
    assert parse("feedback.ok = TRUE").value is True
    assert parse("span.type not in ('A', 'B')").operator == "NOT IN"
    assert parse("span.name not like 'x%'").operator == "NOT LIKE"
    assert (
        parse(
            '''span.content ILIKE """%multi
line%"""'''.replace('"""', "'")
        ).value
        == "%multi\nline%"
    )
    assert parse("trace.status <> 'OK'").operator == "!="


@pytest.mark.parametrize(
    ("text", "position", "mention"),
    [
        ("", 0, "empty"),
        ("(span.type = 'LLM'", 18, "closing parenthesis"),
        ("span.type = 'LLM')", 17, "AND, OR"),
        ("span.colour = 'red'", 5, "unknown key span.colour"),
        ("trace.mood = 'x'", 6, "unknown key trace.mood"),
        ("user.name = 'x'", 0, "unknown key 'user'"),
        ("span.type == 'LLM'", 11, "value"),
        ("span.type ~ 'LLM'", 10, "unexpected character"),
        ("span.type = 'LLM", 12, "unterminated"),
        ("span.type 'LLM'", 10, "operator"),
        ("span.type = LLM", 12, "value"),
        ("trace.execution_time_ms > 'slow'", 0, "number"),
        ("span.type > 'A'", 0, "text"),
        ("count(trace.status = 'OK') > 1", 6, "span"),
        ("count(span.type = 'LLM') > 1.5", 27, "whole number"),
        ("count(span.type = 'LLM')", 24, "comparison"),
        ("span.type IN ('A', 'B'", 22, "')'"),
        ("span.type = 'A' AND", 19, "key"),
        ("tags.k = 5", 0, "quote"),
        ("span.type NOT = 'A'", 14, "LIKE, ILIKE or IN"),
    ],
)
def test_mistakes_name_the_position_and_what_was_expected(text, position, mention):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.position == position, str(caught.value)
    assert mention in str(caught.value)


_OK = "trace.status = 'OK'"


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        ("(" * (MAX_DEPTH + 1) + _OK + ")" * (MAX_DEPTH + 1), "nested deeper"),
        ("NOT " * (MAX_DEPTH + 1) + "span.name LIKE 'a'", "nested deeper"),
        (" AND ".join([_OK] * (MAX_CONDITIONS + 1)), "more than"),
        ("span.name IN (" + ", ".join(f"'{i}'" for i in range(MAX_IN_VALUES + 1)) + ")", "IN list"),
        ("trace.execution_time_ms > 9223372036854775808", "out of range"),
        ("trace.execution_time_ms > 1e400", "out of range"),
        ("span.name ILIKE 'abc\\'", "backslash"),
        ("span.name = 'a\x00b'", "NUL"),
        ("span.name = '" + "x" * MAX_CHARS + "'", "longer than"),
    ],
)
def test_a_filter_is_bounded_where_it_is_parsed(text, mention):
    """Each once a 500 or seconds of SQL (issue 15)."""
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert mention in str(caught.value)


def test_within_the_bounds_filters_parse():
    parse("(" * MAX_DEPTH + _OK + ")" * MAX_DEPTH)
    parse(" AND ".join([_OK] * MAX_CONDITIONS))
    parse("span.name IN (" + ", ".join(f"'{i}'" for i in range(MAX_IN_VALUES)) + ")")
    parse("span.name ILIKE 'abc\\\\'")  # an escaped backslash
    parse("trace.execution_time_ms > 9223372036854775807")


@pytest.mark.parametrize(
    ("mlflow", "ours"),
    [
        ("status = 'OK'", "trace.status = 'OK'"),
        ("attributes.status = 'ERROR'", "trace.status = 'ERROR'"),
        ("attribute.status != 'OK'", "trace.status != 'OK'"),
        ("timestamp_ms > 1735689600000", "trace.timestamp_ms > 1735689600000"),
        ("attributes.timestamp > 5", "trace.timestamp_ms > 5"),
        ("execution_time_ms >= 100", "trace.execution_time_ms >= 100"),
        ("trace.execution_time < 100", "trace.execution_time_ms < 100"),
        ("name = 'agent_run'", "trace.name = 'agent_run'"),
        ("text ILIKE '%timeout%'", "trace.text ILIKE '%timeout%'"),
        ("metadata.`mlflow.trace.user` = 'alice'", "tags.user = 'alice'"),
        ("request_metadata.`mlflow.trace.session` = 's-1'", "tags.session = 's-1'"),
        ("tag.env = 'prod'", "tags.env = 'prod'"),
        ("status = 'OK' AND tags.k = 'v'", "trace.status = 'OK' AND tags.k = 'v'"),
    ],
)
def test_mlflows_search_keys_read_as_ours(mlflow, ours):
    """MLflow's trace search grammar (SearchTraceUtils): bare attributes, its prefixes and
    aliases, and the trace metadata kept as tags."""
    assert parse(mlflow) == parse(ours)


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        ("metadata.`mlflow.sourceRun` = 'r'", "not kept"),
        ("attributes.run_id = 'r'", "attributes are"),
        ("run_id = 'r'", "unknown key 'run_id'"),
    ],
)
def test_mlflow_keys_this_store_does_not_keep_are_named(text, mention):
    with pytest.raises(ParseError, match=mention):
        parse(text)
