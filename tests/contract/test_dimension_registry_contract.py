"""The registry's two counting forms agree: for random traces, the dimensions the stream counts
(``dimensions.of_trace``) are exactly those the SQL form of each family counts for the stored
trace (``dimension_counts``), family by family, on SQLite and PostgreSQL."""

import uuid
from collections import defaultdict

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trace_insights.core import dimensions
from trace_insights.core.filters import parse, unparse
from trace_insights.core.records import SpanRecord, TraceSummary
from trace_insights.truth import span_stats
from trace_insights.truth.dimension_counts import ALL, dimension_counts, universe
from trace_insights.truth.filter_sql import Compiled, compile_filter
from trace_insights.truth.models import Assessment, Experiment, Trace

_THRESHOLDS = [t + d for t in dimensions.LATENCY_THRESHOLDS_MS for d in (-1, 0, 1)]
_COSTS = [pico + d for _, pico in dimensions.COST.levels for d in (-1, 0, 1)]  # pico-USD
SPANS = st.lists(
    st.tuples(
        st.sampled_from(["LLM", "TOOL", "AGENT", "EMBEDDING", "CHAIN"]),
        st.sampled_from(["OK", "ERROR", "UNSET"]),
        st.none() | st.sampled_from(["web_search", "calc", "a_b", "x%y"]),
        st.none() | st.sampled_from(["gpt-4o", "claude-3"]),
    ),
    min_size=1,
    max_size=12,
)
TRACE = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["OK", "ERROR"]),
        "latency": st.integers(0, 70_000) | st.sampled_from(_THRESHOLDS),
        "cost": st.none() | st.integers(0, 2 * 10**13) | st.sampled_from(_COSTS),
        "spans": SPANS,
        "tags": st.dictionaries(
            st.sampled_from(["env", "user", "k_1"]), st.text("ab=_ %é", max_size=5), max_size=3
        ),
        "assessments": st.dictionaries(
            st.sampled_from(["correct", "score", "topic"]),
            st.booleans() | st.integers(-5, 10) | st.sampled_from([0.5, 1.5, "yes", "4", "n/a"]),
            max_size=3,
        ),
    }
)


def _by_family(names: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for name in names:
        split = dimensions.split(name)
        out[type(split[0]).__name__ if split else "unknown"].add(name)
    return dict(out)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(TRACE)
def test_the_stream_and_sql_count_the_same_dimensions_for_a_trace(truth_engine, trace):
    experiment, trace_id = f"r-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    records = [
        SpanRecord(
            trace_id=trace_id,
            span_id=f"{i + 1:016x}",
            parent_span_id=None,
            experiment_id=experiment,
            name=f"s{i}",
            span_type=kind,
            status=status,
            status_message="",
            start_time_ns=0,
            end_time_ns=0,
            tool_name=tool,
            model=model,
            input_tokens=None,
            output_tokens=None,
            attributes={},
        )
        for i, (kind, status, tool, model) in enumerate(trace["spans"])
    ]
    summary = TraceSummary(
        trace_id=trace_id,
        experiment_id=experiment,
        timestamp_ms=0,
        execution_time_ms=trace["latency"],
        status=trace["status"],
        root_name="s0",
        input_tokens=0,
        output_tokens=0,
        span_count=len(records),
        tags=trace["tags"],
        cost=trace["cost"],
        assessments=tuple(trace["assessments"].items()),
    )
    streamed = dimensions.of_trace(summary, records)
    with truth_engine.begin() as connection:
        connection.execute(sa.insert(Experiment), [{"experiment_id": experiment, "created_ms": 0}])
        connection.execute(
            sa.insert(Trace),
            [
                dict(
                    trace_id=trace_id,
                    experiment_id=experiment,
                    final_partition=0,
                    final_offset=0,
                    final_reason="root",
                    timestamp_ms=0,
                    execution_time_ms=trace["latency"],
                    status=trace["status"],
                    root_name="s0",
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                    span_count=len(records),
                    cost=trace["cost"],
                    tags=trace["tags"],
                    assessments=[],
                    current_assessments={k: [v] for k, v in trace["assessments"].items()},
                    span_stats=span_stats.count(
                        (r.span_type, r.status, r.tool_name, r.model) for r in records
                    ),
                )
            ],
        )
        if trace["assessments"]:
            connection.execute(
                sa.insert(Assessment),
                [
                    dict(
                        assessment_id=uuid.uuid4().hex,
                        trace_id=trace_id,
                        experiment_id=experiment,
                        name=name,
                        value=value,
                        source_type="HUMAN",
                        source_id=None,
                        rationale=None,
                        created_ms=0,
                        updated_ms=0,
                    )
                    for name, value in trace["assessments"].items()
                ],
            )
        every = Compiled(sa.true())  # the slice is the whole universe: counted is counted
        selected = universe(every, Trace.experiment_id == experiment)
        rows = connection.execute(dimension_counts(selected, truth_engine.dialect.name))
        counted = {row[0] for row in rows if int(row[1]) > 0 and row[0] != ALL}
        # the third form: a partner's filter text (what the dashboard opens) holds the trace
        # exactly when the stream counts the dimension
        selected_by_filter = {
            candidate
            for candidate in _candidates(streamed)
            if connection.scalar(_matching(candidate, experiment, truth_engine.dialect.name))
        }
    assert _by_family(counted) == _by_family(streamed)
    assert selected_by_filter == streamed


def _candidates(streamed: set[str]) -> set[str]:
    """The trace's dimensions and their near misses in every family."""
    out = set(streamed) | {"status=OK", "status=ERROR", "tags.env=zz", "assessment.correct=zz"}
    for kind in ["LLM", "TOOL", "AGENT", "EMBEDDING", "CHAIN"]:
        out.add(f"span.type={kind}")
        out |= {dimensions.SPAN_COUNT.above(f"span_count.{kind}", t) for t in (1, 2, 3, 5, 10)}
    out |= {f"model={m}" for m in ["gpt-4o", "claude-3"]}
    out |= {
        f"tools.{t}={o}" for t in ["web_search", "calc", "a_b", "x%y"] for o in ["used", "error"]
    }
    out |= {dimensions.LATENCY.above("latency", t) for t in dimensions.LATENCY_THRESHOLDS_MS}
    out |= {f"cost>{t}" for t in dimensions.COST_THRESHOLDS_USD}
    return out


def _matching(dimension: str, experiment: str, dialect: str) -> sa.Select:
    requested = dimensions.partner(dimension)
    assert requested is not None, dimension
    text = unparse(requested.as_filter())
    compiled = compile_filter(parse(text), dialect, [experiment])
    query = sa.select(sa.func.count()).select_from(Trace)
    return compiled.joined(query).where(Trace.experiment_id == experiment, compiled.predicate)
