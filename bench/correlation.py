"""calculate-filter-correlation latency over a large source of truth.

Run by hand: ``.venv/bin/python bench/correlation.py [--traces 1000000] [--requests 5]``.
Starts Kafka, Redis and PostgreSQL, loads that many synthetic agent traces (with spans, tags
and a ``quality`` assessment on every tenth) into PostgreSQL, and times the real
``trace-insights api`` answering calculate-filter-correlation for filters of each kind. The
peer figure, from MLflow 3.17 on SQLite (reference measurements on this machine kind): 11-70 s
for comparable filters at 5,000 traces. Baseline in the same run: a bare ``count(*)`` of the
experiment's traces in PostgreSQL, the floor of any one-pass answer.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import harness  # noqa: E402
import httpx  # noqa: E402
import services  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from synthetic import load  # noqa: E402

from tests.support import service_env, start_process  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402
from trace_insights.truth.models import Span, Trace  # noqa: E402

PAIRS = {
    "span type": ("span.type = 'TOOL'", "trace.status = 'ERROR'"),
    "tool error": (
        "count(span.tool_name = 'web_search' AND span.status = 'ERROR') > 0",
        "trace.status = 'ERROR'",
    ),
    "count()": ("count(span.type = 'CHAT_MODEL') > 2", "trace.execution_time_ms > 2000"),
    "tag": ("tags.query_type = 'complex'", "trace.status = 'ERROR'"),
    "feedback": ("feedback.quality >= 0.8", "span.tool_name = 'sql_query'"),
    "OR combination": (
        "span.tool_name = 'send_email' OR (tags.customer_tier = 'free' "
        "AND NOT trace.status = 'OK')",
        "trace.execution_time_ms > 1000",
    ),
    "span name LIKE": ("span.name LIKE 'web%'", "tags.user IN ('user-1', 'user-2', 'user-3')"),
}


def _floor(connection: sa.Connection, experiment: str, runs: int) -> tuple[float, float]:
    """(p50, p99) ms of counting the experiment's traces, after one warm-up run."""
    count = sa.select(sa.func.count()).select_from(Trace).where(Trace.experiment_id == experiment)
    return harness.timed(lambda: connection.execute(count).scalar(), runs, warmups=1)


def _timed(client: httpx.Client, experiment: str, first: str, second: str, requests: int):  # type: ignore[no-untyped-def]
    """(p50, p99) in ms over ``requests`` calls after one warm-up (it warms PostgreSQL's
    cache), and the answer."""
    body = {"experiment_ids": [experiment], "filter_string1": first, "filter_string2": second}
    answers = []

    def call() -> None:
        response = client.post("/api/2.0/mlflow/traces/calculate-filter-correlation", json=body)
        assert response.status_code == 200, response.text
        answers.append(response.json())

    return harness.timed(call, requests, warmups=1), answers[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=5, help="timed requests per filter pair")
    args = parser.parse_args()
    results = {}
    with harness.started() as up:
        engine = create_engine(up.database)
        experiment = "bench-correlation"
        print(f"loading {args.traces:,} traces into PostgreSQL")
        load(engine, None, experiment, args.traces)
        with engine.connect() as connection:
            spans = connection.scalar(sa.select(sa.func.count()).select_from(Span))
            floor = _floor(connection, experiment, args.requests)
        port = services.free_port()
        settings = dict(
            kafka_bootstrap_servers=up.kafka, redis_url=up.redis, database_url=up.database
        )
        api = start_process(["api", "--api-port", str(port)], service_env(**settings), port, port)
        try:
            client = httpx.Client(base_url=api.api_url, timeout=600)
            for name, (first, second) in PAIRS.items():
                results[name] = (
                    first,
                    second,
                    *_timed(client, experiment, first, second, args.requests),
                )
        finally:
            api.stop()
    print(
        f"\n| filters ({args.traces:,} traces, {spans:,} spans) | p50 ms | p99 ms | "
        "counts (1, 2, joint) | npmi |"
    )
    print("|---|---:|---:|---|---:|")
    for name, (first, second, (p50, p99), answer) in results.items():
        counts = (
            answer["filter_string1_count"],
            answer["filter_string2_count"],
            answer["joint_count"],
        )
        print(
            f"| {name}: `{first}` vs `{second}` | {p50:,.0f} | {p99:,.0f} | {counts} | "
            f"{answer.get('npmi', float('nan')):.3f} |"
        )
    print(
        f"| baseline: `count(*)` of the traces in PostgreSQL | {floor[0]:,.0f} | "
        f"{floor[1]:,.0f} | | |"
    )
    print(
        f"\n{args.requests} timed requests per pair (after one warm-up); 2-core machine, "
        "all services local. Peer: MLflow 3.17 on SQLite, 11-70 s at 5,000 traces."
    )


if __name__ == "__main__":
    main()
