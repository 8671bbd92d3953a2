"""Filter answers side by side with MLflow: the same OTLP traces into a running MLflow server
and into ``trace-insights up`` (started here), then the count of traces each matches.

Run by hand, with an MLflow server of your own (it is no dependency of this project):

    python3 -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow==3.17.2
    /tmp/mlflow/bin/mlflow server --backend-store-uri sqlite:////tmp/mlflow/db --port 5055 &
    .venv/bin/python bench/mlflow_parity.py --mlflow http://127.0.0.1:5055 [--traces 5000]

Span times carry sub-millisecond parts, as real clients' do, so that MLflow's execution-time
arithmetic (each end floored to whole ms, then subtracted) is told apart from flooring the
difference; the table gives both predictions, computed here from the spans sent.
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from tests.support import export_spans, service_env, start_up  # noqa: E402

FILTERS = ("trace.execution_time_ms > 2000", "trace.execution_time_ms < 1000")


def _spans(traces: int) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("parity")
    rnd = random.Random(13)
    base = time.time_ns() - 3_600_000_000_000
    for index in range(traces):
        start = base + index * 500_000_000 + rnd.randint(0, 10**9)
        total = int(rnd.lognormvariate(7.3, 0.5) * 1e6)  # ns; the median is about 1.5 s
        root = tracer.start_span("agent", start_time=start)
        root.set_attribute("mlflow.spanType", '"AGENT"')
        child = tracer.start_span(
            "llm", context=trace.set_span_in_context(root), start_time=start + rnd.randint(1, 10**6)
        )
        child.end(end_time=start + total - rnd.randint(1, 10**6))
        root.end(end_time=start + total)
    return list(memory.get_finished_spans())


def _predicted(spans: list) -> dict[str, tuple[int, int]]:
    """Per trace (MLflow's arithmetic, the difference floored) execution times."""
    bounds: dict[int, tuple[int, int]] = {}
    for span in spans:
        low, high = bounds.get(span.context.trace_id, (span.start_time, span.end_time))
        bounds[span.context.trace_id] = (min(low, span.start_time), max(high, span.end_time))
    return {
        str(t): (hi // 10**6 - lo // 10**6, (hi - lo) // 10**6) for t, (lo, hi) in bounds.items()
    }


def _matches(times: list[int], expression: str) -> int:
    _, operator, threshold = expression.split()
    return sum(1 for t in times if (t > int(threshold) if operator == ">" else t < int(threshold)))


def _mlflow_count(url: str, experiment: str, expression: str) -> int:
    found, token = 0, None
    while True:
        body = {
            "locations": [
                {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment}}
            ],
            "filter": expression,
            "max_results": 500,
            "page_token": token,
        }
        reply = httpx.post(f"{url}/api/3.0/mlflow/traces/search", json=body, timeout=120).json()
        found += len(reply.get("traces", []))
        token = reply.get("next_page_token")
        if not token:
            return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlflow", required=True, help="URL of a running MLflow server")
    parser.add_argument("--traces", type=int, default=5000)
    args = parser.parse_args()
    spans = _spans(args.traces)
    predicted = _predicted(spans)
    name = f"parity-{time.time_ns()}"
    created = httpx.post(f"{args.mlflow}/api/2.0/mlflow/experiments/create", json={"name": name})
    experiment = created.json()["experiment_id"]
    export_spans(args.mlflow, spans, experiment)
    data = Path(tempfile.mkdtemp(prefix="trace-insights-parity-"))
    running = start_up(data, service_env())
    try:
        export_spans(running.otlp_url, spans, "parity")
        time.sleep(3)  # the last traces finalize
        print(f"{args.traces} traces | MLflow's arithmetic | difference floored | MLflow | ours")
        for expression in FILTERS:
            reply = httpx.post(
                f"{running.api_url}/api/2.0/mlflow/traces/calculate-filter-correlation",
                json={
                    "experiment_ids": ["parity"],
                    "filter_string1": expression,
                    "filter_string2": "trace.status = 'OK'",
                },
                timeout=120,
            ).json()
            mlflow_way = _matches([t[0] for t in predicted.values()], expression)
            floored = _matches([t[1] for t in predicted.values()], expression)
            mlflow = _mlflow_count(args.mlflow, experiment, expression)
            print(
                f"{expression} | {mlflow_way} | {floored} | {mlflow} | "
                f"{reply['filter_string1_count']}"
            )
    finally:
        running.stop()


if __name__ == "__main__":
    main()
