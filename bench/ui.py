"""The dashboard's Traffic & Cost view over 100k aggregated traces: from navigation to every
chart drawn, and the bytes it transfers, beside the same four API requests made without a
browser in the same run.

Run by hand: ``.venv/bin/python bench/ui.py [--traces 100000] [--loads 20]``. Starts Kafka,
Redis and PostgreSQL (scripts/services.py), loads one experiment with synthetic traces over the
last 7 days (rows by COPY, aggregates through the aggregator's own delta code, as bench/api.py
does), starts the real ``trace-insights api``, and loads ``/#/traffic`` for 7 days at hour
buckets in headless Chromium (Debian's ``chromium``): each cold load in a fresh browser context
(empty cache), each warm load a reload of the same page. The time is the page's own
performance mark ``ti:traffic:charts`` (navigation start → the three charts drawn with the
answers); the bytes are the navigation's and every resource's ``transferSize`` (compressed, with
headers). Baseline: the view's four ``traffic-cost`` requests from Python, concurrently.
"""

import argparse
import concurrent.futures
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import harness  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import services  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from synthetic import DAY, load  # noqa: E402

from tests.support import service_env, start_process  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402

INSIGHTS = "/api/3.0/mlflow/traces/insights"
MARK = "ti:traffic:charts"


def _load(page: Page, url: str, reload: bool) -> tuple[float, int]:
    if reload:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("main[data-updates]:not([data-updates='0'])", state="attached")
    found = page.evaluate(
        """mark => {
          const [m] = performance.getEntriesByName(mark);
          const nav = performance.getEntriesByType("navigation")[0];
          const bytes = [nav, ...performance.getEntriesByType("resource")]
            .reduce((sum, e) => sum + (e.transferSize || 0), 0);
          return [m ? m.startTime : null, bytes];
        }""",
        MARK,
    )
    assert found[0] is not None, "the charts were not drawn"
    return float(found[0]), int(found[1])


def _p(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(samples, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    experiment = f"ui-{args.traces}"
    with harness.started() as up:
        engine, store = create_engine(up.database), RedisStore(up.redis)
        print(f"loading {args.traces:,} traces into PostgreSQL and Redis")
        load(engine, store, experiment, args.traces)
        port = services.free_port()
        settings = dict(
            kafka_bootstrap_servers=up.kafka, redis_url=up.redis, database_url=up.database
        )
        api = start_process(["api", "--api-port", str(port)], service_env(**settings), port, port)
        try:
            url = f"{api.api_url}/#/traffic?exp={experiment}&range=7d&bucket=hour&tz=UTC"
            cold, warm, cold_bytes, warm_bytes = [], [], [], []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"))
                for _ in range(args.loads):
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()
                    ms, size = _load(page, url, reload=False)
                    cold.append(ms)
                    cold_bytes.append(size)
                    ms, size = _load(page, url, reload=True)
                    warm.append(ms)
                    warm_bytes.append(size)
                    context.close()
                browser.close()
            baseline = _baseline(api.api_url, experiment, args.loads)
        finally:
            api.stop()
    rows = [
        ("dashboard, cold cache (navigation → charts drawn)", _p(cold), np.median(cold_bytes)),
        ("dashboard, reload (warm cache)", _p(warm), np.median(warm_bytes)),
        ("baseline: the 4 traffic-cost requests, concurrently", _p(baseline), None),
    ]
    print(f"\n| Traffic & Cost, {args.traces:,} traces, 7 days by hour | p50 ms | p99 ms | bytes |")
    print("|---|---:|---:|---:|")
    for name, (p50, p99), size in rows:
        shown = "" if size is None else f"{int(size):,}"
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {shown} |")
    print(f"\n{args.loads} loads each; 2-core machine, all services local; bytes: transferSize")


def _baseline(base: str, experiment: str, loads: int) -> list[float]:
    end = int(time.time() * 1000)
    body = {
        "experiment_ids": [experiment],
        "start_time": end - 7 * DAY,
        "end_time": end,
        "time_bucket": "hour",
        "timezone": "UTC",
    }
    names = ["volume", "latency", "errors", "tokens"]
    samples = []
    client = httpx.Client(base_url=base, timeout=60)
    with client, concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        for _ in range(loads):
            started = time.perf_counter()
            replies = list(
                pool.map(lambda n: client.post(f"{INSIGHTS}/traffic-cost/{n}", json=body), names)
            )
            samples.append((time.perf_counter() - started) * 1000)
            assert all(r.status_code == 200 for r in replies), json.dumps(
                [r.text[:200] for r in replies]
            )
    return samples


if __name__ == "__main__":
    main()
