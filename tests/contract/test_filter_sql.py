"""The filter compiler against PostgreSQL and SQLite, on five hand-built traces whose answers
are checked by hand: every example of the filter language, and its edge semantics."""

import uuid

import pytest
import sqlalchemy as sa

from trace_insights.core.assessments import by_name
from trace_insights.core.filters import parse
from trace_insights.truth import span_stats
from trace_insights.truth.dimension_counts import dimension_counts, universe
from trace_insights.truth.filter_sql import FilterError, compile_filter
from trace_insights.truth.models import Assessment, Experiment, Span, Trace
from trace_insights.truth.pair_counts import pair_counts

T0 = 1735689600000
# pico-USD and unpriced calls: $0.5; $0.0001 beside an unpriced call; a cost past a bigint
COSTS = {1: (500_000_000_000, 0), 2: (100_000_000, 1), 5: (None, 2)}


def _trace(n: int, status: str, latency: int, spans: list[dict], tags: dict, assessments: dict):
    trace_id = f"{n:032x}"
    start = T0 + (n - 2) * 1000  # t1 starts before T0, the others at or after it
    trace = dict(
        trace_id=trace_id,
        experiment_id="f",
        final_partition=0,
        final_offset=n,
        final_reason="root",
        timestamp_ms=start,
        execution_time_ms=latency,
        status=status,
        root_name=spans[0]["name"],
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        span_count=len(spans),
        cost=COSTS.get(n, (0, 0))[0],
        unpriced_calls=COSTS.get(n, (0, 0))[1],
        tags=tags,
        assessments=[],
        current_assessments=by_name(assessments.items()),
        span_stats=span_stats.count(
            (s["type"], s.get("status", "OK"), s.get("tool"), s.get("model")) for s in spans
        ),
    )
    rows = []
    for index, span in enumerate(spans):
        rows.append(
            dict(
                trace_id=trace_id,
                span_id=f"{index + 1:016x}",
                parent_span_id=None if index == 0 else f"{1:016x}",
                experiment_id="f",
                name=span["name"],
                span_type=span["type"],
                status=span.get("status", "OK"),
                status_message="",
                start_time_ns=start * 1_000_000,
                end_time_ns=start * 1_000_000,
                duration_ms=0.0,
                tool_name=span.get("tool"),
                model=span.get("model"),
                input_tokens=None,
                output_tokens=None,
                attributes=span.get("attributes", {}),
                trace_tags={},
                content=span.get("content", span["name"]),
                src_partition=0,
                src_offset=n,
                late=False,
            )
        )
    assessment_rows = [
        dict(
            assessment_id=f"a-{n}-{name}",
            trace_id=trace_id,
            experiment_id="f",
            name=name,
            value=value,
            source_type="HUMAN",
            source_id=None,
            rationale=None,
            created_ms=0,
            updated_ms=0,
        )
        for name, value in assessments.items()
    ]
    return trace, rows, assessment_rows


ROOT = {"name": "agent_run", "type": "AGENT"}
TRACES = [
    _trace(
        1,
        "OK",
        1200,
        [
            ROOT,
            {
                "name": "chat gpt-4",
                "type": "LLM",
                "model": "gpt-4",
                "attributes": {"model_name": "gpt-4", "cache_hit": True, "temperature": 0.2},
            },
            {"name": "chat", "type": "LLM"},
            {"name": "chat", "type": "LLM"},
            {"name": "chat", "type": "LLM"},
        ],
        {"environment": "production", "query_type": "complex", "deployment.environment": "prod"},
        {"quality": 0.9, "accuracy": "correct"},
    ),
    _trace(
        2,
        "ERROR",
        6000,
        [
            {**ROOT, "status": "ERROR"},
            {
                "name": "web_search",
                "type": "TOOL",
                "tool": "web_search",
                "status": "ERROR",
                "content": "web_search Timeout after 30s",
            },
            *({"name": f"vectorize_{i}", "type": "EMBEDDING"} for i in range(6)),
        ],
        {"environment": "dev", "query_type": "complex", "deployment.environment": "dev"},
        {"user_rating": 5},
    ),
    _trace(
        3,
        "OK",
        300,
        [ROOT, {"name": "retry_llm", "type": "CHAT_MODEL", "attributes": {"cache_hit": "false"}}],
        {"environment": "production", "query_type": "simple", 'say "hi"': "yes"},
        {"accuracy": "incorrect", "is_helpful": True},
    ),
    _trace(4, "OK", 100, [{"name": "embed_docs", "type": "CHAIN"}], {}, {}),
    _trace(
        5,
        "ERROR",
        5001,
        [
            {**ROOT, "status": "ERROR"},
            {"name": "chat", "type": "LLM"},
            {"name": "chat", "type": "LLM"},
            {"name": "embed_a", "type": "EMBEDDING"},
            {"name": "embed_b", "type": "EMBEDDING"},
        ],
        {"query_type": "complex"},
        {"user_rating": 3, "quality": "n/a"},
    ),
]

CASES = [
    ("trace.cost > 0.1", {1}),  # dollars
    ("trace.cost >= 0.0001", {1, 2}),
    ("trace.cost < 0.0001", {3, 4}),  # a cost no bigint holds is no cost
    ("trace.cost = 0", {3, 4}),
    ("trace.cost < 1e18", {1, 2, 3, 4}),  # past any cost: clamped, not an error
    ("trace.unpriced_calls > 0", {2, 5}),
    ("span.type = 'LLM'", {1, 5}),
    ("span.name LIKE '%retry%'", {3}),
    ("span.name LIKE 'chat_%'", {1}),  # _ is any one character ("chat gpt-4")
    ("span.name LIKE 'chat\\_%'", set()),  # \_ is an underscore, on SQLite as on PostgreSQL
    ("span.name LIKE 'web\\_search'", {2}),
    ("span.status = 'ERROR'", {2, 5}),
    ("span.attributes['model_name'] = 'gpt-4'", {1}),
    ("span.attributes.cache_hit = 'true'", {1}),
    ("span.attributes.cache_hit = true", {1}),
    ("span.attributes.cache_hit = 'false'", {3}),
    ("span.attributes.temperature < 0.5", {1}),
    ("count(span.type = 'LLM') > 3", {1}),
    ("count(span.name LIKE '%embed%') >= 2", {5}),
    ("count(span.status = 'ERROR') = 0", {1, 3, 4}),
    ("count(span.type = 'TOOL') < 1", {1, 3, 4, 5}),
    ("count(span.type = 'EMBEDDING' AND span.name LIKE 'embed%') = 2", {5}),
    ("trace.execution_time_ms > 5000", {2, 5}),
    ("trace.status = 'OK'", {1, 3, 4}),
    ("tags.environment = 'production'", {1, 3}),
    ("tags.`deployment.environment` != 'dev'", {1}),
    ("tags.`say \"hi\"` = 'yes'", {3}),  # a key no JSON path names (SQLite)
    ("feedback.quality >= 0.8", {1}),
    ("feedback.user_rating > 4", {2}),
    ("feedback.is_helpful = true", {3}),
    ("assessment.accuracy = 'correct'", {1}),
    ("assessment.accuracy IN ('correct', 'incorrect')", {1, 3}),
    (f"trace.timestamp_ms >= {T0}", {2, 3, 4, 5}),
    ("span.content ILIKE '%timeout%'", {2}),
    ("span.content LIKE '%timeout%'", set()),
    ("trace.text ILIKE '%TIMEOUT%'", {2}),
    (
        "count(span.type = 'EMBEDDING') > 5 OR "
        "(tags.query_type = 'complex' AND NOT trace.status = 'OK')",
        {2, 5},
    ),
    ("span.type IN ('LLM', 'CHAT_MODEL')", {1, 3, 5}),
    ("span.type NOT IN ('AGENT')", {1, 2, 3, 4, 5}),
    ("NOT span.type = 'LLM'", {2, 3, 4}),
    (
        "tags.query_type = 'complex' and trace.status = 'ERROR' or trace.execution_time_ms < 200",
        {2, 5, 4},
    ),
    (
        """span.type = 'TOOL'
        AND span.status = 'ERROR'""",
        {2},
    ),
    ("tags.environment = '; DROP TABLE traces; --'", set()),
    ("span.tool_name = 'web_search'", {2}),
    ("span.model IN ('gpt-4', 'gpt-5')", {1}),
    ("count(span.tool_name = 'web_search' AND span.status = 'ERROR') > 0", {2}),
    ("count(span.status = 'ERROR' AND span.tool_name IN ('web_search', 'x')) = 0", {1, 3, 4, 5}),
    ("count(span.type IN ('LLM', 'LLM')) = 4", {1}),
    ("count(span.type IN ('LLM', 'EMBEDDING')) >= 4", {1, 2, 5}),
    ("count(span.type = 'LLM') >= 1", {1, 5}),
    ("count(span.tool_name = 'web_search') != 0", {2}),
    ("count(span.type = 'LLM') <= 0", {2, 3, 4}),
    ("feedback.quality < 1", {1}),  # trace 5's quality is the text 'n/a'
    ("feedback.quality != 0.9", set()),
    ("feedback.user_rating IN (3, 5)", {2, 5}),
]


@pytest.fixture
def truth(truth_engine):
    with truth_engine.begin() as connection:
        connection.execute(sa.insert(Experiment), [{"experiment_id": "f", "created_ms": 0}])
        for table, index in ((Trace, 0), (Span, 1), (Assessment, 2)):
            rows = [
                row for trace in TRACES for row in ([trace[index]] if index == 0 else trace[index])
            ]
            if rows:
                connection.execute(sa.insert(table), rows)
    return truth_engine


def _matching(engine, text: str) -> set[int]:
    compiled = compile_filter(parse(text), engine.dialect.name)
    with engine.connect() as connection:
        query = compiled.joined(sa.select(Trace.trace_id)).where(compiled.predicate)
        ids = connection.scalars(query)
        return {int(trace_id, 16) for trace_id in ids}


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_filters_select_the_hand_checked_traces(truth, text, expected):
    assert _matching(truth, text) == expected


def test_an_injection_attempt_is_only_a_value(truth):
    assert _matching(truth, "span.name = 'x''; DROP TABLE traces; --'") == set()
    with truth.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Trace)) == 5


@pytest.mark.parametrize(
    "text",
    [
        "feedback.quality > 'high'",
        "span.attributes.cache_hit >= true",
        "feedback.is_helpful > true",
    ],
)
def test_values_the_key_cannot_compare_are_refused(truth, text):
    with pytest.raises(FilterError):
        compile_filter(parse(text), truth.dialect.name)


def test_a_fresh_experiment_id_matches_nothing(truth):
    compiled = compile_filter(parse("span.type = 'LLM'"), truth.dialect.name, ["f"])
    with truth.connect() as connection:
        query = compiled.joined(sa.select(sa.func.count()).select_from(Trace))
        query = query.where(compiled.predicate, Trace.experiment_id == uuid.uuid4().hex)
        assert connection.scalar(query) == 0


PAIRS = [
    ("span.type = 'LLM'", "trace.status = 'ERROR'"),  # joint 1
    ("feedback.quality >= 0.8", "tags.query_type = 'complex'"),  # feedback on the trace row
    ("trace.status = 'OK'", "trace.status = 'ERROR'"),  # joint 0
    ("span.type NOT IN ('AGENT')", "trace.execution_time_ms > 0"),  # joint = total
    ("tags.environment = 'none'", "count(span.type = 'LLM') > 3"),  # a count of 0
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_pair_counts_are_the_sets_sizes(truth, first, second):
    """The packed single-pass counts (PostgreSQL) and the plain sums (SQLite) both give the
    sizes of the hand-checked sets, their intersection and the universe."""
    dialect = truth.dialect.name
    universe = [Trace.experiment_id == "f"]
    with truth.connect() as connection:
        counts = pair_counts(
            connection,
            compile_filter(parse(first), dialect),
            compile_filter(parse(second), dialect),
            universe,
        )
    a, b = _matching(truth, first), _matching(truth, second)
    assert counts == (5, len(a), len(b), len(a & b))


def test_dimension_counts_count_each_dimension_in_and_out_of_a_slice(truth):
    """The filter-slice correlation's grouped counts (distinct span stats and tag sets expanded
    once, weighted by their traces), hand-checked: (traces, traces in the slice)."""
    dialect = truth.dialect.name
    in_slice = compile_filter(parse("trace.status = 'ERROR'"), dialect)  # traces 2 and 5
    selected = universe(in_slice, Trace.experiment_id == "f")
    with truth.connect() as connection:
        rows = connection.execute(dimension_counts(selected, dialect))
        counts = {row[0]: (int(row[1]), int(row[2] or 0)) for row in rows}
    assert {dimension: counts.get(dimension) for dimension in EXPECTED_COUNTS} == EXPECTED_COUNTS


EXPECTED_COUNTS = {
    "": (5, 2),
    "status=ERROR": (2, 2),
    "status=OK": (3, 0),
    "span.type=LLM": (2, 1),
    "span.type=EMBEDDING": (2, 2),
    "span.type=AGENT": (4, 2),
    "count(span.type=LLM)>3": (1, 0),
    "count(span.type=EMBEDDING)>5": (1, 1),
    "tools.web_search=used": (1, 1),
    "tools.web_search=error": (1, 1),
    "model=gpt-4": (1, 0),
    "tags.environment=production": (2, 0),
    "tags.query_type=complex": (3, 2),
    "tags.deployment.environment=dev": (1, 1),
    "latency>5000": (2, 2),
    "latency>1000": (3, 2),
    "assessment.quality=0.9": (1, 0),
    "assessment.quality=n/a": (1, 1),
    "assessment.is_helpful=true": (1, 0),
}
