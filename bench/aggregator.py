"""Aggregator throughput and end-to-end freshness, on real Kafka, PostgreSQL and Redis.

Run by hand: ``.venv/bin/python bench/aggregator.py [--traces 10000]``. Starts the services
(scripts/services.py), then measures:

1. throughput: realistic agent traces (as the collector writes them) produced to a topic of
   2 partitions per process and drained by N aggregator processes (``--processes 1,2``) into
   PostgreSQL and Redis — spans/s, scaling efficiency against one process, and the
   aggregators' CPU seconds per 100k spans (from /proc), counted from the first record
   produced: start-up and group joins are not in it. Baseline in the same run: the same
   records only consumed and decoded into canonical spans (no stores), the floor of any Python
   consumer. The CPU the local PostgreSQL, Redis and Kafka broker spent during the one-process
   drain (from /proc) shows where the two cores go.
2. freshness: a collector and ``--fresh-aggregators`` aggregators under a fixed offered load
   (``--rate`` traces/s of pre-encoded OTLP requests); probe traces are sent one at a time and
   timed from the OTLP request until Redis counts them.
"""

import argparse
import os
import subprocess
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
import sqlalchemy as sa  # noqa: E402
from end_to_end import requests_of  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402

from tests.support import (  # noqa: E402
    sdk_spans,
    start_aggregator,
    start_collector,
)
from trace_insights.aggregator.decode import deliveries  # noqa: E402
from trace_insights.bus import Record  # noqa: E402
from trace_insights.collector.regroup import assemble, regroup  # noqa: E402
from trace_insights.core import keys  # noqa: E402
from trace_insights.core.buckets import Resolution  # noqa: E402
from trace_insights.kafka_topic import ensure_topic  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth.models import Base  # noqa: E402

PARTITIONS = 4  # of the freshness and baseline topics
PARTITIONS_PER_PROCESS = 2


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU seconds of a process; with ``children``, also of its children that have ended (a
    PostgreSQL backend or autovacuum worker that exits would otherwise take its CPU along)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


_SERVICES = {"postgres": "PostgreSQL", "redis-server": "Redis", "java": "Kafka broker"}


def _service_cpu() -> dict[str, float]:
    """CPU seconds so far of every process of each local service, by its command name."""
    out = dict.fromkeys(_SERVICES.values(), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
            if command in _SERVICES:
                out[_SERVICES[command]] += _cpu_seconds(int(entry.name), children=True)
        except OSError:  # the process ended meanwhile
            continue
    return out


def _messages(spans: list, experiment: str, partitions: int) -> list[tuple[int, bytes, bytes]]:
    """What the collector would write for ``spans``: (partition, key, payload)."""
    out = []
    for start in range(0, len(spans), 400):
        grouped = regroup(
            encode_spans(spans[start : start + 400]),
            partitions=partitions,
            max_message_bytes=900_000,
            experiment_id=experiment,
        )
        for partition, runs in grouped.routed.items():
            for batch in assemble(partition, runs, 900_000):
                out.append((batch.partition, batch.key, batch.payload))
    return out


def _produce(servers: str, topic: str, messages: list[tuple[int, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    for partition, key, payload in messages:
        producer.send(topic, value=payload, key=key, partition=partition)
    producer.flush()
    producer.close()


def _settled(pids: list[int]) -> None:
    """Wait until the processes have started and idle (their CPU still for half a second)."""
    last = -1.0
    while True:
        time.sleep(0.5)
        now = sum(_cpu_seconds(pid) for pid in pids)
        if now - last < 0.01:
            return
        last = now


def _traces(store: RedisStore, experiment: str) -> int:
    day = int(time.time() * 1000) // 86_400_000 * 86_400_000
    total = 0
    for start in (day - 86_400_000, day):
        total += int(
            store.read_hash(keys.bucket(experiment, Resolution.DAY, start)).get("traces", 0)
        )
    return total


def _settings(servers: str, redis_url: str, url: str, topic: str, partitions: int) -> dict:
    """An aggregator's settings: the bench's services, the topic and its consumer group."""
    return dict(
        kafka_bootstrap_servers=servers,
        redis_url=redis_url,
        database_url=url,
        spans_topic=topic,
        consumer_group=f"g-{topic}",
        topic_partitions=partitions,
    )


def throughput(up: harness.Servers, traces: int, processes: int) -> dict:
    """N aggregators over N x PARTITIONS_PER_PROCESS partitions of a new topic draining
    ``traces`` traces into a new schema: measured from the first record produced (start-up
    and group joins are not in it)."""
    servers, redis_url, url = up.kafka, up.redis, harness.fresh_schema(up.postgres)
    partitions = processes * PARTITIONS_PER_PROCESS
    experiment, topic = f"bench-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
    ensure_topic([servers], topic, partitions, 1)
    store = RedisStore(redis_url)
    settings = {**_settings(servers, redis_url, url, topic, partitions), "max_poll_records": 200}
    members = [start_aggregator(**settings) for _ in range(processes)]
    # a new experiment's first batch is made whole by a rebuild: one trace before the clock
    warm = sdk_spans(1, seed=2)
    _produce(servers, topic, _messages(warm, experiment, partitions))
    while _traces(store, experiment) < 1:
        time.sleep(0.2)
    spans = sdk_spans(traces, seed=3)
    messages = _messages(spans, experiment, partitions)
    _settled([process.pid for process in members])
    cpu_before = sum(_cpu_seconds(process.pid) for process in members)
    services_before = _service_cpu()
    started = time.monotonic()
    rss = [_rss_mb(members)]
    _produce(servers, topic, messages)
    while _traces(store, experiment) < traces + 1:
        time.sleep(0.2)
        rss.append(_rss_mb(members))
        if time.monotonic() - started > 1800:
            raise RuntimeError("the aggregators did not finish in 30 minutes")
    wall = time.monotonic() - started
    cpu = sum(_cpu_seconds(process.pid) for process in members) - cpu_before
    stored = _stored_bytes(url)
    services = {name: spent - services_before[name] for name, spent in _service_cpu().items()}
    for process in members:
        process.terminate()
        process.wait(30)
    store.close()
    return {
        "spans": len(spans),
        "wall": wall,
        "cpu": cpu,
        "services": services,
        "bytes": stored,
        "rss": rss,
    }


def _rss_mb(members: list[subprocess.Popen]) -> float:
    """The aggregators' resident memory, MB in all."""
    total = 0
    for process in members:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def _stored_bytes(url: str) -> int:
    """What the run's schema holds on disk: every table of the truth with its indexes."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        sizes = [
            connection.scalar(sa.select(sa.func.pg_total_relation_size(table.name)))
            for table in Base.metadata.sorted_tables
        ]
    engine.dispose()
    return sum(sizes)


def decode_only(servers: str, traces: int) -> dict:
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    spans = sdk_spans(traces, seed=3)
    ensure_topic([servers], topic, PARTITIONS, 1)
    _produce(servers, topic, _messages(spans, "bench", PARTITIONS))
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    decoded = 0
    cpu_before = time.process_time()
    started = time.monotonic()
    for message in consumer:
        spans_ = deliveries([Record(message.offset, message.timestamp, message.value)]).spans
        decoded += len(spans_)
        if decoded >= len(spans):
            break
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    consumer.close()
    return {"spans": decoded, "wall": wall, "cpu": cpu}


def freshness(
    servers: str, redis_url: str, url: str, rate: float, probes: int, aggregators: int
) -> tuple[list[float], list[float], float]:
    """Each probe's seconds from its OTLP request to the collector's answer and to its trace
    counted in Redis, under a load of ``rate`` traces/s, with ``aggregators`` processes over
    the topic's partitions; and the load's traces counted per second meanwhile. Load and probes
    are encoded beforehand, so that making them costs the machine nothing while the pipeline is
    measured."""
    seconds = 5 + probes * 0.5 + 10  # the warm-up, the probes, and some to spare
    load = requests_of(sdk_spans(int(rate * seconds), seed=7))
    interval = seconds / len(load)  # between two load requests, for ``rate`` traces/s
    probe_bodies = [requests_of(sdk_spans(1, seed=100 + n))[0] for n in range(probes)]
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    probe_experiment = f"probe-{uuid.uuid4().hex[:6]}"
    collector = start_collector(servers, topic)
    settings = _settings(servers, redis_url, url, topic, PARTITIONS)
    members = [start_aggregator(**settings) for _ in range(aggregators)]
    store = RedisStore(redis_url)
    stop = threading.Event()
    headers = {"content-type": "application/x-protobuf"}

    def post(http: httpx.Client, body: bytes, experiment: str) -> None:
        reply = http.post(
            f"{collector.http_url}/v1/traces",
            content=body,
            headers={**headers, "x-mlflow-experiment-id": experiment},
        )
        assert reply.status_code == 200, reply.text

    def offer() -> None:
        with httpx.Client(timeout=60) as http:
            due = time.monotonic()
            for body in load:
                if stop.is_set():
                    return
                post(http, body, "bench-load")
                due += interval
                time.sleep(max(0.0, due - time.monotonic()))

    loader = threading.Thread(target=offer)
    loader.start()
    time.sleep(5)
    samples: list[float] = []
    acknowledged: list[float] = []
    loaded, since = _traces(store, "bench-load"), time.monotonic()
    try:
        with httpx.Client(timeout=60) as http:
            for index, body in enumerate(probe_bodies, start=1):
                started = time.monotonic()
                post(http, body, probe_experiment)
                acknowledged.append(time.monotonic() - started)
                while _traces(store, probe_experiment) < index:
                    time.sleep(0.005)
                    if time.monotonic() - started > 60:
                        raise RuntimeError("a probe trace did not arrive within 60 s")
                samples.append(time.monotonic() - started)
                time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
        achieved = (_traces(store, "bench-load") - loaded) / (time.monotonic() - since)
        if not loader.is_alive():
            print("the load ran out before the last probe: measure with fewer probes")
    finally:
        stop.set()
        loader.join()
        for member in members:
            member.terminate()
            member.wait(30)
        collector.stop()
        store.close()
    return acknowledged, samples, achieved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument(
        "--processes", default="1,2", help="aggregator processes of each throughput run"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="offered traces/s (freshness)")
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument(
        "--fresh-aggregators", type=int, default=1, help="aggregator processes (freshness)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    with harness.started() as up:
        servers, redis_url, url = up.kafka, up.redis, up.database
        runs = {n: throughput(up, args.traces, n) for n in counts}
        floor = decode_only(servers, args.traces)
        acknowledged, fresh, achieved = (
            freshness(servers, redis_url, url, args.rate, args.probes, args.fresh_aggregators)
            if args.probes
            else ([], [], 0.0)
        )
    print(f"\n| {'what':<58} | {'spans/s':>9} | {'CPU s / 100k spans':>18} | {'scaling':>7} |")
    print(f"|{'-' * 60}|{'-' * 10}:|{'-' * 19}:|{'-' * 8}:|")
    single = runs[counts[0]]["spans"] / runs[counts[0]]["wall"] / counts[0]
    rows = [
        (
            f"aggregator: topic → PostgreSQL + Redis ({n} proc., {n * PARTITIONS_PER_PROCESS} "
            "part.)",
            row,
            f"{row['spans'] / row['wall'] / n / single:.0%}",
        )
        for n, row in runs.items()
    ]
    rows.append(("baseline: consume + decode only, no stores", floor, ""))
    for name, row, scaling in rows:
        print(
            f"| {name:<58} | {row['spans'] / row['wall']:>9,.0f} | "
            f"{row['cpu'] / row['spans'] * 100_000:>18.1f} | {scaling:>7} |"
        )
    one = runs[counts[0]]
    print(f"\nwhere the CPU went while {counts[0]} aggregator(s) drained the topic (CPU s / 100k):")
    spent = {"aggregator": one["cpu"], **one["services"]}
    for name, seconds in spent.items():
        print(f"| {name:<14} | {seconds / one['spans'] * 100_000:>6.1f} |")
    print(f"| {'all':<14} | {sum(spent.values()) / one['spans'] * 100_000:>6.1f} |")
    rss = one["rss"]
    quarters = [rss[min(len(rss) - 1, len(rss) * q // 4)] for q in range(5)]
    print(
        "\naggregator RSS over the drain, MB (start, each quarter): "
        + ", ".join(f"{mb:.0f}" for mb in quarters)
        + f"; peak {max(rss):.0f}"
    )
    per_span = one["bytes"] / one["spans"]
    print(f"\nPostgreSQL on disk, tables and indexes: {per_span:,.0f} bytes/span")
    if fresh:
        p50, p99 = np.percentile(np.array(fresh) * 1000, [50, 99])
        a50, a99 = np.percentile(np.array(acknowledged) * 1000, [50, 99])
        print(
            f"\nfreshness (OTLP request → counted in Redis, {args.fresh_aggregators} "
            f"aggregator(s)) at {args.rate:g} traces/s offered "
            f"({achieved:,.0f} counted per second meanwhile), {len(fresh)} probes: "
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (the collector's answer: p50 {a50:.0f} ms, "
            f"p99 {a99:.0f} ms)"
        )
    print(f"{args.traces} traces, {one['spans']} spans; 2-core machine, all services local")


if __name__ == "__main__":
    main()
