"""Insights API latency over the live aggregates, beside the same questions asked of PostgreSQL.

Run by hand: ``.venv/bin/python bench/api.py [--traces 100000,1000000] [--requests 50]``.
Starts Kafka, Redis and PostgreSQL (scripts/services.py) and, for each scale, loads one
experiment with that many synthetic agent traces spread over the last 7 days: the rows into
PostgreSQL (COPY, as the aggregator writes them) and the aggregates into Redis through the
aggregator's own delta code (``accumulate`` + the fenced apply, as a rebuild does). Then the
real ``trace-insights api`` process answers every insights endpoint for the 7-day range at
hour buckets; the baseline is the same numbers computed by SQL over PostgreSQL (SQLAlchemy
Core, percentile_cont for percentiles) in the same run.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import harness  # noqa: E402
import httpx  # noqa: E402
import services  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from synthetic import DAY, load  # noqa: E402

from tests.support import service_env, start_process  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth import dialects  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402
from trace_insights.truth.models import Span, Trace  # noqa: E402

INSIGHTS = "/api/3.0/mlflow/traces/insights"


def endpoint_bodies(experiment: str, start: int, end: int) -> dict[str, dict[str, Any]]:
    base = {
        "experiment_ids": [experiment],
        "start_time": start,
        "end_time": end,
        "time_bucket": "hour",
    }
    npmi = {
        "dimension1": {"name": "status", "parameters": {"value": "ERROR"}},
        "dimension2": {"name": "tools.web_search", "parameters": {"value": "error"}},
    }
    return {
        "traffic-cost/volume": base,
        "traffic-cost/latency": base,
        "traffic-cost/errors": base,
        "traffic-cost/tokens": base,
        "tools/discovery": base,
        "tools/metrics": {**base, "tool_name": "web_search"},
        "tags/discovery": base,
        "tags/metrics": {**base, "tag_key": "user"},
        "assessments/discovery": base,
        "dimensions/discovery": base,
        "dimensions/calculate-npmi": {**base, **npmi},
        "dimensions/correlations": {**base, "dimension": npmi["dimension1"]},
        "dimensions/calculate-npmi (store path)": {
            **base,
            **npmi,
            "dimension1": {"name": "latency", "parameters": {"threshold": "1234", "operator": ">"}},
        },
    }


def sql_questions(experiment: str, start: int, end: int) -> dict[str, sa.Select]:
    in_range = sa.and_(
        Trace.experiment_id == experiment, Trace.timestamp_ms >= start, Trace.timestamp_ms < end
    )
    hour = (Trace.timestamp_ms / 3_600_000) * 3_600_000
    tags = dialects.of("postgresql").json_each(Trace.tags)  # a trace's tags, one row each
    ok = sa.func.sum(sa.case((Trace.status == "OK", 1), else_=0))
    error = sa.func.sum(sa.case((Trace.status == "ERROR", 1), else_=0))

    def pct(q: float, column: Any) -> Any:
        return sa.func.percentile_cont(q).within_group(column)

    tool_spans = (
        sa.select(
            Span.tool_name,
            sa.func.count(),
            sa.func.count(Span.trace_id.distinct()),
            sa.func.sum(sa.case((Span.status == "ERROR", 1), else_=0)),
            sa.func.avg(Span.duration_ms),
            pct(0.5, Span.duration_ms),
            pct(0.9, Span.duration_ms),
            pct(0.99, Span.duration_ms),
        )
        .join(Trace, Trace.trace_id == Span.trace_id)
        .where(in_range, Span.tool_name.is_not(None))
    )
    return {
        "traffic-cost/volume": sa.select(hour, sa.func.count(), ok, error)
        .where(in_range)
        .group_by(hour),
        "traffic-cost/latency": sa.select(
            hour,
            pct(0.5, Trace.execution_time_ms),
            pct(0.9, Trace.execution_time_ms),
            pct(0.99, Trace.execution_time_ms),
            sa.func.avg(Trace.execution_time_ms),
            sa.func.min(Trace.execution_time_ms),
            sa.func.max(Trace.execution_time_ms),
        )
        .where(in_range)
        .group_by(hour),
        "traffic-cost/errors": sa.select(hour, sa.func.count(), error)
        .where(in_range)
        .group_by(hour),
        "traffic-cost/tokens": sa.select(
            hour, sa.func.sum(Trace.input_tokens), sa.func.sum(Trace.output_tokens)
        )
        .where(in_range)
        .group_by(hour),
        "tools/discovery": tool_spans.group_by(Span.tool_name),
        "tags/discovery": sa.select(
            tags.c.key, sa.func.count(), sa.func.count(tags.c.value.distinct())
        )
        .select_from(Trace)
        .join(tags, sa.true())
        .where(in_range)
        .group_by(tags.c.key),
    }


def _timed_endpoint(client: httpx.Client, name: str, body: dict, requests: int):  # type: ignore[no-untyped-def]
    path = f"{INSIGHTS}/{name.split(' ')[0]}"

    def call() -> None:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text

    return harness.timed(call, requests, warmups=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default="100000,1000000", help="comma-separated scales")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per endpoint")
    parser.add_argument("--sql-requests", type=int, default=5, help="timed SQL runs per question")
    args = parser.parse_args()
    scales = [int(n) for n in args.traces.split(",")]
    results: dict[int, dict[str, tuple[float, float]]] = {}
    sql: dict[int, dict[str, tuple[float, float]]] = {}
    with harness.started() as up:
        engine, store = create_engine(up.database), RedisStore(up.redis)
        port = services.free_port()
        settings = dict(
            kafka_bootstrap_servers=up.kafka, redis_url=up.redis, database_url=up.database
        )
        api = start_process(["api", "--api-port", str(port)], service_env(**settings), port, port)
        try:
            client = httpx.Client(base_url=api.api_url, timeout=600)
            for traces in scales:
                experiment = f"bench-{traces}"
                print(f"loading {traces:,} traces into PostgreSQL and Redis")
                load(engine, store, experiment, traces)
                end = int(time.time() * 1000)
                start = end - 7 * DAY
                results[traces] = {
                    name: _timed_endpoint(client, name, body, args.requests)
                    for name, body in endpoint_bodies(experiment, start, end).items()
                }
                with engine.connect() as connection:
                    sql[traces] = {
                        name: harness.timed(
                            lambda q=query: connection.execute(q).all(), args.sql_requests
                        )
                        for name, query in sql_questions(experiment, start, end).items()
                    }
        finally:
            api.stop()
    header = " | ".join(f"{n:,} traces p50 / p99 ms" for n in scales)
    print(f"\n| endpoint (7 days, hour buckets) | {header} |")
    print("|---|" + "---:|" * len(scales))
    for name in results[scales[0]]:
        cells = " | ".join(f"{results[n][name][0]:.1f} / {results[n][name][1]:.1f}" for n in scales)
        print(f"| API {name} | {cells} |")
    for name in sql[scales[0]]:
        cells = " | ".join(f"{sql[n][name][0]:.1f} / {sql[n][name][1]:.1f}" for n in scales)
        print(f"| SQL baseline {name} | {cells} |")
    print(
        f"\n{args.requests} requests per endpoint, {args.sql_requests} runs per SQL question; "
        "2-core machine, all services local"
    )


if __name__ == "__main__":
    main()
