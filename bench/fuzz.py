"""Long, random fuzzing of a running ``trace-insights up``: the runs ``make test`` bounds.

Run by hand: ``.venv/bin/python bench/fuzz.py [--api-examples 300] [--examples 2000]``.
Starts ``up`` with demo-like traffic, then sends, each from hypothesis or schemathesis and not
derandomized:

1. every API operation in its OpenAPI, valid and invalid cases (schemathesis);
2. OTLP/JSON bodies to the collector (the decoder fuzz strategy, bare and inside
   ``resourceSpans``);
3. filter strings to trace search and filter correlation.

A 5xx, a reply slower than 10 s or a dropped connection is a problem; each is printed with what
provoked it. At the end ``up`` must still be ready, and its peak RSS is shown beside the start.
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzzing import FILTERS, JSON, TIMEOUT_S, fuzz_api  # noqa: E402
from tests.support import (  # noqa: E402
    export_spans,
    sdk_spans,
    service_env,
    start_up,
    traces_counted,
    wait_for,
)

EXPERIMENT = "0"


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _each(strategy: st.SearchStrategy, examples: int, send: Callable[[object], None]) -> None:
    """Call ``send`` on ``examples`` random draws of ``strategy``; it raises on a problem."""

    @given(strategy)
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(value: object) -> None:
        send(value)

    run()


class Phase:
    def __init__(self) -> None:
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []

    def post(self, client: httpx.Client, url: str, what: str, **kwargs: object) -> None:
        self.sent += 1
        try:
            reply = client.post(url, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.problems.append(f"{exc!r}: {what}")
            return
        self.statuses[reply.status_code] += 1
        if reply.status_code >= 500:
            self.problems.append(f"{reply.status_code}: {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-examples", type=int, default=300, help="per operation and mode")
    parser.add_argument("--examples", type=int, default=2000, help="OTLP bodies, filters")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="trace-insights-fuzz-")) / "data"
    up = start_up(data, service_env(trace_idle_timeout_s=3))
    rows = []
    try:
        export_spans(up.otlp_url, sdk_spans(200, seed=15), EXPERIMENT)
        wait_for(lambda: traces_counted(up.api_url, EXPERIMENT) == 200, 120, "the traffic")
        started_mb = _rss_mb(up.process.pid, "VmRSS")

        began = time.monotonic()
        sent, problems = fuzz_api(
            up.api_url, args.api_examples, derandomize=False, progress=lambda op: print(f"  {op}")
        )
        rows.append(("API operations (schemathesis)", sent, problems, time.monotonic() - began))

        otlp, client = Phase(), httpx.Client()
        began = time.monotonic()
        bodies = JSON | JSON.map(lambda v: {"resourceSpans": [v]})
        _each(
            bodies,
            args.examples,
            lambda v: otlp.post(
                client,
                f"{up.otlp_url}/v1/traces",
                json.dumps(v)[:200],
                content=json.dumps(v).encode("utf-8", "surrogatepass"),
                headers={"content-type": "application/json"},
            ),
        )
        rows.append(
            ("OTLP/JSON bodies (collector)", otlp.sent, otlp.problems, time.monotonic() - began)
        )

        filters = Phase()
        began = time.monotonic()
        api = up.api_url + "/api/3.0/mlflow/traces"

        def send_filter(text: object) -> None:
            filters.post(
                client,
                f"{api}/search",
                repr(text),
                json={"experiment_ids": [EXPERIMENT], "filter": text},
            )
            filters.post(
                client,
                f"{api}/calculate-filter-correlation",
                repr(text),
                json={
                    "experiment_ids": [EXPERIMENT],
                    "filter_string1": text,
                    "filter_string2": "trace.status = 'ERROR'",
                },
            )

        _each(FILTERS, args.examples, send_filter)
        rows.append(
            (
                "filter strings (search, correlation)",
                filters.sent,
                filters.problems,
                time.monotonic() - began,
            )
        )
        ready = httpx.get(f"{up.api_url}/ready", timeout=10).status_code == 200
        peak_mb = _rss_mb(up.process.pid, "VmHWM")
    finally:
        stopped = up.stop()
    print("\n| phase | cases | 5xx, hangs, drops | seconds |")
    print("|---|---:|---:|---:|")
    for phase, sent, problems, seconds in rows:
        print(f"| {phase} | {sent:,} | {len(problems)} | {seconds:.0f} |")
    print(
        f"\n`up` after it: ready {ready}, exit code {stopped}; RSS {started_mb:.0f} MB after "
        f"the traffic, peak {peak_mb:.0f} MB"
    )
    for _, _, problems, _ in rows:
        for problem in problems:
            print(f"- {problem}")


if __name__ == "__main__":
    main()
