"""End to end: OTLP/HTTP requests in, traces counted by the insights API — ``trace-insights up``
and the cluster processes, every service on this machine.

Run by hand: ``.venv/bin/python bench/end_to_end.py [--traces 20000] [--clients 4]
[--aggregators 2]``. Has ``--clients`` threads post pre-encoded OTLP/HTTP protobuf requests of
realistic agent traces (300 spans each, over keep-alive) until the insights API counts every
trace, to:

- ``up`` (its embedded stores) in a temporary directory;
- the cluster: a collector, ``--aggregators`` aggregator processes (2 partitions each) and an
  API process over a local Kafka broker, Redis and PostgreSQL.

Reported: spans/s from the first request to the last trace counted, and the product's CPU per
100k spans (its processes', from /proc; the stores' not). Baseline in the same run: the same
requests posted by the same clients to a server that only reads each body and answers 200,
the ceiling of these clients on this machine.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import harness  # noqa: E402
import httpx  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402

from tests.support import (  # noqa: E402
    Running,
    free_ports,
    sdk_spans,
    service_env,
    start_aggregator,
    start_collector,
    start_process,
    start_up,
    traces_counted,
)

CHUNK = 300  # spans per request, as the SDK's batch exporter sends them at most by default


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_of(spans: list) -> list[bytes]:
    """Pre-encoded OTLP/HTTP protobuf bodies of ``CHUNK`` spans each."""
    return [
        encode_spans(spans[start : start + CHUNK]).SerializeToString()
        for start in range(0, len(spans), CHUNK)
    ]


def _post_all(url: str, bodies: list[bytes], experiment: str, clients: int) -> None:
    """Post every body once, shared by ``clients`` threads, each over one keep-alive client."""
    pending = list(reversed(bodies))
    lock = threading.Lock()
    headers = {"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment}

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    if not pending:
                        return
                    body = pending.pop()
                reply = http.post(f"{url}/v1/traces", content=body, headers=headers)
                assert reply.status_code == 200, reply.text

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the collector's clients use it

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def baseline(bodies: list[bytes], clients: int) -> float:
    """Seconds for the clients to post every body to a server that only reads it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    started = time.monotonic()
    _post_all(f"http://127.0.0.1:{server.server_port}", bodies, "b", clients)
    elapsed = time.monotonic() - started
    server.shutdown()
    serving.join()
    return elapsed


@contextlib.contextmanager
def up() -> Iterator[tuple[Running, list[int]]]:
    """``up`` on its embedded stores: (where it listens, its pid)."""
    with tempfile.TemporaryDirectory(prefix="trace-insights-bench-up-") as data:
        running = start_up(Path(data), service_env())
        try:
            yield running, [running.process.pid]
        finally:
            running.stop()


@contextlib.contextmanager
def cluster(aggregators: int) -> Iterator[tuple[Running, list[int]]]:
    """Collector, aggregators and API over local Kafka, Redis and PostgreSQL: (where the API
    and the collector listen, the product's pids)."""
    with harness.started() as servers:
        topic = f"spans-{uuid.uuid4().hex[:8]}"
        settings = dict(
            kafka_bootstrap_servers=servers.kafka,
            redis_url=servers.redis,
            database_url=servers.database,
            spans_topic=topic,
            topic_partitions=2 * aggregators,
        )
        collector = start_collector(servers.kafka, topic, topic_partitions=2 * aggregators)
        members = [
            start_aggregator(consumer_group=f"g-{topic}", **settings) for _ in range(aggregators)
        ]
        api_port = free_ports()[0]
        api = start_process(
            ["api", "--api-port", str(api_port)], service_env(**settings), api_port, api_port
        )
        try:
            pids = [collector.process.pid, api.process.pid, *(m.pid for m in members)]
            yield Running(api.process, api.api_url, collector.http_url), pids
        finally:
            api.stop()
            for member in members:
                member.terminate()
                member.wait(30)
            collector.stop()


def run(deployment: contextlib.AbstractContextManager, traces: int, clients: int) -> dict:
    """Spans/s end to end and acknowledged, and the product's CPU per 100k spans."""
    spans = sdk_spans(traces, seed=3)
    bodies = requests_of(spans)
    experiment = f"e2e-{uuid.uuid4().hex[:6]}"
    with deployment as (running, pids):
        # a new experiment's first batch is made whole by a rebuild: one trace first
        _post_all(running.otlp_url, requests_of(sdk_spans(1, seed=2)), experiment, 1)
        while traces_counted(running.api_url, experiment) < 1:
            time.sleep(0.1)
        time.sleep(1)
        cpu_before = sum(_cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        _post_all(running.otlp_url, bodies, experiment, clients)
        accepted = time.monotonic() - started
        while traces_counted(running.api_url, experiment) < traces + 1:
            time.sleep(0.05)
            if time.monotonic() - started > 900:
                raise RuntimeError("not every trace was counted in 15 minutes")
        wall = time.monotonic() - started
        cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
    n = len(spans)
    return {"spans": n, "wall": wall, "accepted": accepted, "cpu": cpu, "bodies": bodies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--aggregators", type=int, default=2)
    args = parser.parse_args()
    results = {
        "up": run(up(), args.traces, args.clients),
        f"cluster, {args.aggregators} aggregators": run(
            cluster(args.aggregators), args.traces, args.clients
        ),
    }
    any_run = next(iter(results.values()))
    floor = baseline(any_run["bodies"], args.clients)
    print(f"\n| {'what':<66} | {'spans/s':>9} | {'CPU s / 100k spans':>18} |")
    print(f"|{'-' * 68}|{'-' * 10}:|{'-' * 19}:|")
    for name, result in results.items():
        n = result["spans"]
        counted = f"{name}: OTLP/HTTP → counted by the insights API"
        acknowledged = f"{name}: requests acknowledged"
        cpu = result["cpu"] / n * 100_000
        print(f"| {counted:<66} | {n / result['wall']:>9,.0f} | {cpu:>18.1f} |")
        print(f"| {acknowledged:<66} | {n / result['accepted']:>9,.0f} | {'':>18} |")
    n = any_run["spans"]
    print(
        f"| {'baseline: the same clients, a server that only reads':<66} | {n / floor:>9,.0f} | "
        f"{'':>18} |"
    )
    requests = len(any_run["bodies"])
    print(f"{args.traces} traces, {n} spans, {requests} requests, {args.clients} clients")


if __name__ == "__main__":
    main()
