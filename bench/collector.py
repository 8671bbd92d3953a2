"""Collector throughput: OTLP/HTTP protobuf into a real Kafka, per core of the collector.

Run by hand (``make bench-collector`` or ``.venv/bin/python bench/collector.py``). Starts a
local Kafka broker (or uses TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS), a collector process and
several client processes that post pre-built realistic payloads of ~100 spans with keep-alive.
The collector's CPU time comes from /proc, so "spans per CPU-second" is its per-core rate
whatever the clients cost. The baseline row, measured in the same run, is kafka-python alone
producing the same regrouped bytes (acks=all, idempotent, lz4): the floor the collector adds to.
"""

import argparse
import http.client
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import services  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from tests.support import count_spans, start_collector  # noqa: E402
from trace_insights.collector.regroup import assemble, regroup  # noqa: E402
from trace_insights.generate import Traffic  # noqa: E402


def build_payloads(count: int, spans_per_payload: int = 100) -> list[bytes]:
    """Realistic agent traces from the generator, cut into requests of ~100 spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    traffic = Traffic(seed=1)
    payloads = []
    index = 0
    while len(payloads) < count:
        memory.clear()
        spans = 0
        while spans < spans_per_payload:
            spans += traffic.emit(tracer, index)
            index += 1
        payloads.append(encode_spans(memory.get_finished_spans()).SerializeToString())
    return payloads


def _client(url: str, payloads: list[bytes], seconds: float, results) -> None:  # type: ignore[no-untyped-def]
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "1"}
    sent = errors = 0
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        connection.request("POST", "/v1/traces", payloads[index % len(payloads)], headers)
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            sent += 1
        else:
            errors += 1
        index += 1
    results.put((sent, errors))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_collector(servers: str, payloads: list[bytes], clients: int, seconds: float) -> dict:
    spans_per = [count_spans_bytes(p) for p in payloads]
    collector = start_collector(servers, f"bench-{uuid.uuid4().hex[:8]}", topic_partitions=12)
    try:
        # warm-up: connections, metadata, the producer's first batches
        _client(collector.http_url, payloads, 1.0, multiprocessing.Queue())
        results: multiprocessing.Queue = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(
                target=_client, args=(collector.http_url, payloads[i::clients], seconds, results)
            )
            for i in range(clients)
        ]
        cpu_before = _cpu_seconds(collector.process.pid)
        started = time.monotonic()
        for worker in workers:
            worker.start()
        outcomes = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
        wall = time.monotonic() - started
        cpu = _cpu_seconds(collector.process.pid) - cpu_before
    finally:
        collector.stop()
    requests = sum(sent for sent, _ in outcomes)
    errors = sum(failed for _, failed in outcomes)
    spans = requests * (sum(spans_per) / len(spans_per))
    return {"spans": spans, "wall": wall, "cpu": cpu, "errors": errors}


def count_spans_bytes(payload: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    return count_spans(ExportTraceServiceRequest.FromString(payload))


def bench_producer_only(servers: str, payloads: list[bytes], seconds: float) -> dict:
    """kafka-python alone, same settings as the collector, producing the regrouped bytes."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=1)])
    admin.close()
    groups = []
    for payload in payloads:
        grouped = regroup(
            ExportTraceServiceRequest.FromString(payload), partitions=12, max_message_bytes=900_000
        )
        batches = [
            batch
            for partition, items in grouped.routed.items()
            for batch in assemble(partition, items, 900_000)
        ]
        groups.append((grouped.accepted, batches))
    producer = KafkaProducer(
        bootstrap_servers=servers,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=2,
        batch_size=1024 * 1024,
    )
    producer.partitions_for(topic)
    spans = 0
    cpu_before = time.process_time()
    started = time.monotonic()
    index = 0
    while time.monotonic() - started < seconds:
        accepted, batches = groups[index % len(groups)]
        futures = [
            producer.send(topic, value=b.payload, key=b.key, partition=b.partition) for b in batches
        ]
        for future in futures:
            future.get(30)
        spans += accepted
        index += 1
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    producer.close()
    return {"spans": spans, "wall": wall, "cpu": cpu, "errors": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    broker = None
    servers = os.environ.get("TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS")
    workdir = Path(tempfile.mkdtemp(prefix="trace-insights-bench-"))
    if not servers:
        broker = services.Kafka(workdir / "kafka")
        broker.start()
        servers = broker.bootstrap_servers
    try:
        payloads = build_payloads(64)
        average = sum(count_spans_bytes(p) for p in payloads) / len(payloads)
        kib = sum(map(len, payloads)) / len(payloads) / 1024
        print(f"payloads: {len(payloads)} requests, {average:.0f} spans, {kib:.1f} KiB each")
        collector = bench_collector(servers, payloads, args.clients, args.seconds)
        baseline = bench_producer_only(servers, payloads, args.seconds)
        rows = [
            ("collector, OTLP/HTTP protobuf → Kafka", collector),
            ("baseline: kafka-python producer alone", baseline),
        ]
    finally:
        if broker is not None:
            broker.stop()
    print()
    print(
        f"| {'what':<40} | {'spans/s (wall)':>14} | {'CPU s / 100k spans':>18} | "
        f"{'spans per CPU-second':>20} | {'errors':>6} |"
    )
    print(f"|{'-' * 42}|{'-' * 16}:|{'-' * 20}:|{'-' * 22}:|{'-' * 8}:|")
    for name, row in rows:
        per_cpu = row["spans"] / row["cpu"] if row["cpu"] else float("inf")
        print(
            f"| {name:<40} | {row['spans'] / row['wall']:>14,.0f} | "
            f"{row['cpu'] / row['spans'] * 100_000:>18.2f} | {per_cpu:>20,.0f} | "
            f"{row['errors']:>6} |"
        )
    print(
        f"\n{args.clients} client processes, {args.seconds:g} s, 2-core machine: clients, "
        "collector and broker share the cores; CPU is the collector process's own."
    )


if __name__ == "__main__":
    main()
