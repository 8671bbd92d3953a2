"""Live feed latency and alert rule evaluation cost, on real Kafka, Redis and PostgreSQL.

Run by hand: ``.venv/bin/python bench/feed.py [--subscribers 100] [--rules 1000]``.

1. Feed: collector, aggregator and API processes; ``--subscribers`` Server-Sent Events clients
   follow one experiment while SDK traffic flows at ``--rate`` traces/s. Latency is from the
   aggregator's apply (the change stream entry's time, same clock) to the event's arrival.
2. Rules: ``--rules`` alert rules of every metric on one experiment; the cost of evaluating all
   of them once an update touches it (what each applied update costs the alert worker), beside
   the baseline of one insights query answering the same windows.
"""

import argparse
import base64
import json
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import harness  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import services  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from tests.support import (  # noqa: E402
    export_spans,
    sdk_spans,
    service_env,
    start_aggregator,
    start_collector,
    start_process,
)
from trace_insights.api.alerts.worker import AlertWorker  # noqa: E402
from trace_insights.api.context import Context  # noqa: E402
from trace_insights.api.publisher import BusPublisher  # noqa: E402
from trace_insights.bus import LocalBus  # noqa: E402
from trace_insights.core.settings import Settings  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402
from trace_insights.truth.models import AlertRule  # noqa: E402

FEED = "/api/3.0/mlflow/traces/insights/stream"
METRICS = [
    ("error_rate", {}),
    ("trace_count", {}),
    ("latency_p99", {}),
    ("token_count", {}),
    ("tool_error_rate", {"tool_name": "web_search"}),
    ("assessment_failure_rate", {"assessment_name": "correct"}),
]


def follow(api_url: str, experiment: str, latencies: list[float], stop: threading.Event) -> None:
    params = {"experiment_ids": experiment, "metrics": "volume,errors"}
    with (
        httpx.Client(base_url=api_url, timeout=None) as client,
        client.stream("GET", FEED, params=params) as response,
    ):
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("id: "):
                cursor = json.loads(base64.urlsafe_b64decode(line[4:]))
                change = cursor["p"][1] if cursor["p"] else cursor["d"][experiment]
                latencies.append(time.time() * 1000 - int(change.split("-")[0]))


def feed(servers: str, redis_url: str, url: str, subscribers: int, rate: float, seconds: int):
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    settings = dict(
        kafka_bootstrap_servers=servers,
        redis_url=redis_url,
        database_url=url,
        spans_topic=topic,
        topic_partitions=4,
    )
    collector = start_collector(servers, topic)
    aggregator = start_aggregator(consumer_group=f"g-{topic}", **settings)
    port = services.free_port()
    api = start_process(["api", "--api-port", str(port)], service_env(**settings), port, port)
    experiment = f"feed-{uuid.uuid4().hex[:6]}"
    export_spans(collector.http_url, sdk_spans(5, seed=1), experiment)
    time.sleep(3)
    latencies: list[float] = []
    stop = threading.Event()
    followers = [
        threading.Thread(
            target=follow, args=(api.api_url, experiment, latencies, stop), daemon=True
        )
        for _ in range(subscribers)
    ]
    for thread in followers:
        thread.start()
    time.sleep(3)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        batch = max(1, int(rate / 5))
        export_spans(collector.http_url, sdk_spans(batch, seed=None), experiment)
        sent += batch
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    time.sleep(3)
    stop.set()
    api.stop()
    aggregator.terminate()
    aggregator.wait(30)
    collector.stop()
    return latencies, sent


def rules(redis_url: str, url: str, count: int) -> tuple[float, float]:
    """Seconds to evaluate ``count`` rules once, and one insights-style measurement."""
    engine = create_engine(url)
    store = RedisStore(redis_url)
    context = Context(
        settings=Settings(), store=store, engine=engine, publisher=BusPublisher(LocalBus(1))
    )
    experiment = f"rules-{uuid.uuid4().hex[:6]}"
    with engine.begin() as connection:
        connection.execute(
            sa.insert(AlertRule),
            [
                dict(
                    rule_id=f"r-{i:06d}",
                    name=f"rule {i}",
                    experiment_ids=[experiment],
                    metric=METRICS[i % len(METRICS)][0],
                    parameters=METRICS[i % len(METRICS)][1],
                    window_s=300 + 60 * (i % 10),
                    comparator=">",
                    threshold=1e12,
                    min_traces=1,
                    baseline=None,
                    webhooks=["http://127.0.0.1:9/never"],
                    secret="x" * 16,
                    cooldown_s=0,
                    slack=False,
                    created_ms=0,
                    state="ok",
                    state_since_ms=0,
                    last_value=None,
                    last_evaluated_ms=None,
                    last_notified_ms=None,
                    version=0,
                )
                for i in range(count)
            ],
        )
    worker = AlertWorker(context)
    worker.evaluate_once()  # first pass: cursors
    samples = []
    for _ in range(3):
        worker._last_sweep = 0.0  # every rule is due, as when an update touches the experiment
        started = time.perf_counter()
        worker.evaluate_once()
        samples.append(time.perf_counter() - started)
    one = AlertWorker(context)
    with engine.begin() as connection:
        connection.execute(sa.delete(AlertRule).where(AlertRule.rule_id != "r-000000"))
    one.evaluate_once()
    started = time.perf_counter()
    one._last_sweep = 0.0
    one.evaluate_once()
    single = time.perf_counter() - started
    store.close()
    engine.dispose()
    return float(np.median(samples)), single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="offered traces/s")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rules", type=int, default=1000)
    args = parser.parse_args()
    with harness.started() as up:
        latencies, sent = feed(
            up.kafka, up.redis, up.database, args.subscribers, args.rate, args.seconds
        )
        all_rules, one_rule = rules(up.redis, up.database, args.rules)
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (float("nan"),) * 2
    print("\n| measure | value |\n|---|---:|")
    print(
        f"| feed latency, apply → SSE event, p50 ({args.subscribers} subscribers) | {p50:,.0f} ms |"
    )
    print(f"| feed latency, apply → SSE event, p99 | {p99:,.0f} ms |")
    print(f"| events received | {len(latencies):,} ({sent} traces at {args.rate:g}/s) |")
    print(
        f"| evaluating {args.rules:,} rules after an update | {all_rules * 1000:,.0f} ms "
        f"({all_rules / args.rules * 1e6:,.0f} µs per rule) |"
    )
    print(f"| baseline: the same evaluation with 1 rule | {one_rule * 1000:,.1f} ms |")
    print("\n2-core machine, all services local")


if __name__ == "__main__":
    main()
