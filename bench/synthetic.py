"""Synthetic agent traces for the benchmarks, loaded as the aggregator would have left them:
rows in the source of truth (COPY) and, optionally, the aggregates through the aggregator's own
delta code (``accumulate`` + the fenced apply, as a rebuild does)."""

import random
import time
from typing import Any

import sqlalchemy as sa

from tests.support import make_whole
from trace_insights.aggregator.deltas import Policy, build_updates
from trace_insights.aggregator.truth.history import History
from trace_insights.aggregator.truth.writer import Owed, span_row, trace_row
from trace_insights.core.buckets import Resolution
from trace_insights.core.records import SpanRecord, TraceSummary
from trace_insights.stores.base import AggregateStore
from trace_insights.truth.bulk import insert_ignoring_conflicts
from trace_insights.truth.models import Assessment, Experiment, Span, Trace

DAY = 86_400_000
PARTITIONS = 12
CHUNK = 5_000
TOOLS = ["web_search", "sql_query", "calculator", "get_weather", "send_email", "file_read"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b"]
POLICY = Policy(
    ttl_ms={Resolution.MINUTE: 2 * DAY, Resolution.HOUR: 90 * DAY, Resolution.DAY: 730 * DAY}
)


def synthetic(  # type: ignore[no-untyped-def]
    index: int,
    experiment: str,
    rnd: random.Random,
    now_ms: int,
    window_ms: int = 7 * DAY,
    tools: list[str] = TOOLS,
    users: int = 50,
):
    """One trace: a root, 1-3 LLM calls, 0-3 calls of distinct ``tools``, a ``user`` tag of
    ``users`` values; start uniform over the ``window_ms`` before ``now_ms``."""
    trace_id = f"{rnd.getrandbits(128):032x}"
    start_ns = (now_ms - rnd.randrange(window_ms)) * 1_000_000
    tags = {
        "query_type": rnd.choice(["simple", "complex", "multi_step"]),
        "customer_tier": rnd.choice(["free", "pro", "enterprise"]),
        "user": f"user-{rnd.randint(1, users)}",
    }
    cursor, spans, failed = start_ns, [], False
    for n in range(rnd.randint(1, 3)):
        duration = int(rnd.lognormvariate(6.5, 0.6)) * 1_000_000
        spans.append(
            _span(
                trace_id,
                f"{n + 2:016x}",
                experiment,
                "CHAT_MODEL",
                cursor,
                duration,
                model=rnd.choice(MODELS),
                tokens=(rnd.randint(200, 4000), rnd.randint(20, 800)),
            )
        )
        cursor += duration
    for n, tool in enumerate(rnd.sample(tools, min(len(tools), rnd.randint(0, 3)))):
        duration = int(rnd.lognormvariate(4.5, 0.8)) * 1_000_000
        error = rnd.random() < 0.08
        failed |= error
        spans.append(
            _span(
                trace_id,
                f"{n + 10:016x}",
                experiment,
                "TOOL",
                cursor,
                duration,
                tool=tool,
                error=error,
            )
        )
        cursor += duration
    root = _span(
        trace_id,
        f"{1:016x}",
        experiment,
        "AGENT",
        start_ns,
        cursor - start_ns + 5_000_000,
        error=failed and rnd.random() < 0.6,
        parent=False,
    )
    spans.insert(0, root)
    summary = TraceSummary(
        trace_id=trace_id,
        experiment_id=experiment,
        timestamp_ms=start_ns // 1_000_000,
        execution_time_ms=(root.end_time_ns - start_ns) // 1_000_000,
        status="ERROR" if root.status == "ERROR" else "OK",
        root_name="agent_run",
        input_tokens=sum(s.input_tokens or 0 for s in spans),
        output_tokens=sum(s.output_tokens or 0 for s in spans),
        span_count=len(spans),
        tags=tags,
    )
    return summary, spans


def _span(
    trace_id,
    span_id,
    experiment,
    kind,
    start_ns,
    duration_ns,
    model=None,
    tokens=(None, None),
    tool=None,
    error=False,
    parent=True,
) -> SpanRecord:  # type: ignore[no-untyped-def]
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=f"{1:016x}" if parent else None,
        experiment_id=experiment,
        name=tool or model or "agent_run",
        span_type=kind,
        status="ERROR" if error else "OK",
        status_message="",
        start_time_ns=start_ns,
        end_time_ns=start_ns + duration_ns,
        tool_name=tool,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        attributes={},
    )


def load(engine: sa.Engine, store: AggregateStore | None, experiment: str, traces: int) -> None:
    """``traces`` traces over the last 7 days; every tenth gets a ``quality`` assessment."""
    rnd, now = random.Random(traces), int(time.time() * 1000)
    with engine.begin() as connection:
        connection.execute(sa.insert(Experiment).values(experiment_id=experiment, created_ms=now))
    if store is not None:
        make_whole(store, experiment)  # as a rebuild of the empty experiment leaves it
    started = time.monotonic()
    for chunk_start in range(0, traces, CHUNK):
        partition = (chunk_start // CHUNK) % PARTITIONS
        offset = chunk_start // CHUNK
        made = [
            synthetic(i, experiment, rnd, now)
            for i in range(chunk_start, min(traces, chunk_start + CHUNK))
        ]
        assessments = {s.trace_id: _assessment(s, rnd) for s, _ in made[::10]}
        rows = [
            trace_row(
                s,
                spans,
                partition,
                offset,
                "root",
                [(a["name"], a["value"])] if (a := assessments.get(s.trace_id)) else [],
            )
            for s, spans in made
        ]
        with engine.begin() as connection:
            insert_ignoring_conflicts(connection, Trace, rows)
            insert_ignoring_conflicts(
                connection,
                Span,
                [span_row(span, partition, offset, False) for _, spans in made for span in spans],
            )
            insert_ignoring_conflicts(connection, Assessment, list(assessments.values()))
        if store is None:
            _progress(chunk_start, traces, started)
            continue
        histories = [History(summary, offset, spans) for summary, spans in made]
        owed = Owed(after=offset - 1, end=offset, histories=histories)
        for update in build_updates(owed, partition, store, POLICY):
            assert store.apply(update)
        _progress(chunk_start, traces, started)
    print()
    if engine.dialect.name != "postgresql":
        return
    # measure a settled database: statistics fresh, visibility map set, dirty pages written
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))
        connection.execute(sa.text("CHECKPOINT"))


def _progress(chunk_start: int, traces: int, started: float) -> None:
    done = min(traces, chunk_start + CHUNK)
    rate = done / (time.monotonic() - started)
    print(f"\r  loaded {done:,}/{traces:,} traces ({rate:,.0f}/s)", end="", flush=True)


def _assessment(s: TraceSummary, rnd: random.Random) -> dict[str, Any]:
    """A ``quality`` score from an LLM judge."""
    return dict(
        assessment_id=f"a-{s.trace_id}",
        trace_id=s.trace_id,
        experiment_id=s.experiment_id,
        name="quality",
        value=round(rnd.random(), 2),
        source_type="LLM_JUDGE",
        source_id="judge",
        rationale=None,
        created_ms=s.timestamp_ms,
        updated_ms=s.timestamp_ms,
    )
