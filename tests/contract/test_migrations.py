"""The migrations build exactly the schema the models describe, and carry existing data
forward, on PostgreSQL and SQLite."""

import json
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from trace_insights.truth import span_stats
from trace_insights.truth.database import MIGRATIONS
from trace_insights.truth.models import Base, Trace


def test_migrations_match_the_models(truth_engine):
    dialect = truth_engine.dialect.name

    def on_this_dialect(item: Any, name: Any, kind: str, reflected: bool, other: Any) -> bool:
        only = getattr(item, "_ddl_if", None)  # an index only some databases get
        return only is None or only.dialect in (None, dialect)

    with truth_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": False, "include_object": on_this_dialect}
        )
        assert compare_metadata(context, Base.metadata) == []


def _to(engine, revision: str) -> None:  # type: ignore[no-untyped-def]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        move = command.upgrade if revision == "head" else command.downgrade
        move(config, revision)


TAGS = {"a": {"env": "prod", 'say "hi"': "yes"}, "b": {"env": "dev"}}


def test_upgrading_a_populated_database_fills_the_filter_columns_and_execution_times(truth_engine):
    _to(truth_engine, "0003")
    traces = sa.table(
        "traces",
        *(
            sa.column(name)
            for name in (
                "trace_id",
                "experiment_id",
                "final_partition",
                "final_offset",
                "final_reason",
                "timestamp_ms",
                "execution_time_ms",
                "status",
                "root_name",
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "span_count",
                "tags",
                "assessments",
            )
        ),
    )
    spans = sa.table(
        "spans",
        *(
            sa.column(name)
            for name in (
                "trace_id",
                "span_id",
                "experiment_id",
                "name",
                "span_type",
                "status",
                "status_message",
                "start_time_ns",
                "end_time_ns",
                "duration_ms",
                "tool_name",
                "model",
                "attributes",
                "trace_tags",
                "content",
                "src_partition",
                "src_offset",
                "late",
            )
        ),
    )
    facts = {
        "a": [("AGENT", "OK", None, None), ("TOOL", "ERROR", "search", None)],
        "b": [("LLM", "OK", None, "gpt-4o")],
        "c": [],
    }
    # a's spans are 1999.2 ms apart, stored as 1999 before 0007; MLflow's arithmetic says 2000
    times = {"a": [(900_000, 5_000_000), (1_000_000, 2_000_100_000)], "b": [(0, 0)]}
    assessments = sa.table(
        "assessments",
        *(
            sa.column(name)
            for name in (
                "assessment_id",
                "trace_id",
                "experiment_id",
                "name",
                "value",
                "source_type",
                "source_id",
                "rationale",
                "created_ms",
                "updated_ms",
            )
        ),
    )
    values = {"x1": 0.5, "x2": 4, "x3": True}
    with truth_engine.begin() as connection:
        for trace_id, trace_facts in facts.items():
            connection.execute(
                sa.insert(traces).values(
                    trace_id=trace_id,
                    experiment_id="1",
                    final_partition=0,
                    final_offset=0,
                    final_reason="root",
                    timestamp_ms=0,
                    status="OK",
                    execution_time_ms=1999 if trace_id == "a" else 0,
                    root_name=None,
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                    span_count=len(trace_facts),
                    tags=json.dumps(TAGS.get(trace_id, {})),
                    assessments="[]",
                )
            )
            for index, (kind, status, tool, model) in enumerate(trace_facts):
                start, end = times[trace_id][index]
                connection.execute(
                    sa.insert(spans).values(
                        trace_id=trace_id,
                        span_id=str(index),
                        experiment_id="1",
                        name="s",
                        span_type=kind,
                        status=status,
                        status_message="",
                        start_time_ns=start,
                        end_time_ns=end,
                        duration_ms=0.0,
                        tool_name=tool,
                        model=model,
                        attributes="{}",
                        trace_tags="{}",
                        content="s",
                        src_partition=0,
                        src_offset=0,
                        late=False,
                    )
                )
        for assessment_id, value in values.items():
            connection.execute(
                sa.insert(assessments).values(
                    assessment_id=assessment_id,
                    trace_id="a",
                    experiment_id="1",
                    name="q",
                    value=json.dumps(value),
                    source_type="HUMAN",
                    source_id=None,
                    rationale=None,
                    created_ms=0,
                    updated_ms=0,
                )
            )
    _to(truth_engine, "head")
    with truth_engine.connect() as connection:
        stored = dict(connection.execute(sa.select(Trace.trace_id, Trace.span_stats)).all())
        current = dict(
            connection.execute(sa.select(Trace.trace_id, Trace.current_assessments)).all()
        )
        durations = dict(
            connection.execute(sa.select(Trace.trace_id, Trace.execution_time_ms)).all()
        )
    assert stored == {trace_id: span_stats.count(f) for trace_id, f in facts.items()}
    assert stored["c"] == {}  # a trace without span rows: no stats, not NULL
    assert current == {"a": {"q": [0.5, 4, True]}, "b": {}, "c": {}}
    assert durations == {"a": 2000, "b": 0, "c": 0}
    _to(truth_engine, "0014")  # the tag rows of the trace rows, again
    with truth_engine.connect() as connection:
        tag_rows = sa.table(
            "trace_tags", sa.column("trace_id"), sa.column("key"), sa.column("value")
        )
        rows = connection.execute(sa.select(tag_rows)).all()
    assert sorted(rows) == sorted((t, k, v) for t, tags in TAGS.items() for k, v in tags.items())
    _to(truth_engine, "head")
    assert "trace_tags" not in sa.inspect(truth_engine).get_table_names()
