"""Builders and readers shared by the tests: OTLP requests, OTLP/JSON, the Kafka topic."""

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import json_format
from kafka import KafkaConsumer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROOT = Path(__file__).resolve().parent.parent
# The ``trace-insights`` command of this checkout; a test of an installed copy passes its own.
PRODUCT = (sys.executable, "-m", "trace_insights")


def make_request(
    traces: int = 5, spans_per_trace: int = 4, seed: int = 7, service: str = "svc"
) -> ExportTraceServiceRequest:
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    for _ in range(traces):
        trace_id = rnd.randbytes(16)
        root_id = rnd.randbytes(8)
        for index in range(spans_per_trace):
            span = scope_spans.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if index == 0 else rnd.randbytes(8)
            if index:
                span.parent_span_id = root_id
            span.name = f"step-{index}"
            span.kind = Span.SPAN_KIND_INTERNAL
            span.start_time_unix_nano = 1_735_689_600_000_000_000 + index * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rnd.randint(1, 10**9)
            span.attributes.add(key="openinference.span.kind").value.string_value = "TOOL"
            span.attributes.add(key="llm.token_count.prompt").value.int_value = rnd.randint(1, 999)
            span.attributes.add(key="score").value.double_value = rnd.random()
            span.status.code = rnd.choice([0, 1, 2])
    return request


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: json_format's output with ids turned from base64 to hex."""
    document = json_format.MessageToDict(request)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(document)
    return document


def attribute(attributes: Iterable[KeyValue], key: str) -> AnyValue | None:
    for item in attributes:
        if item.key == key:
            return item.value
    return None


@dataclass
class TopicRecord:
    partition: int
    key: bytes
    payload: bytes

    def request(self) -> ExportTraceServiceRequest:
        message = ExportTraceServiceRequest()
        message.ParseFromString(self.payload)
        return message


def read_topic(
    servers: str, topic: str, min_spans: int, timeout_s: float = 30
) -> list[TopicRecord]:
    """Every record of the topic, waiting until at least ``min_spans`` spans arrived."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records: list[TopicRecord] = []
    spans = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer:
                record = TopicRecord(message.partition, message.key, message.value)
                records.append(record)
                spans += count_spans(record.request())
            if spans >= min_spans:
                # one more poll round so nothing sent in excess goes unnoticed
                for message in consumer:
                    records.append(TopicRecord(message.partition, message.key, message.value))
                break
    finally:
        consumer.close()
    return records


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def spans_of(records: Iterable[TopicRecord]) -> list[tuple[TopicRecord, Any, Span]]:
    """(record, resource, span) for every span in the records."""
    out = []
    for record in records:
        for rs in record.request().resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append((record, rs.resource, span))
    return out


@dataclass
class Collector:
    process: subprocess.Popen
    http_url: str
    grpc_target: str
    topic: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_collector(
    servers: str,
    topic: str,
    command: tuple[str, ...] = PRODUCT,
    cwd: Path = ROOT,
    **settings: Any,
) -> Collector:
    """The real ``trace-insights collector`` process, on free ports."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import free_port, wait_for_port

    http_port, grpc_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACE_INSIGHTS_")}
    env.update(
        TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS=servers,
        TRACE_INSIGHTS_SPANS_TOPIC=topic,
        TRACE_INSIGHTS_TOPIC_PARTITIONS="4",
    )
    env.update({f"TRACE_INSIGHTS_{key.upper()}": str(value) for key, value in settings.items()})
    process = subprocess.Popen(
        [
            *command,
            "collector",
            "--otlp-http-port",
            str(http_port),
            "--otlp-grpc-port",
            str(grpc_port),
        ],
        env=env,
        cwd=cwd,
    )
    wait_for_port(http_port, 30, process)
    collector = Collector(process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", topic)
    deadline = time.monotonic() + 60
    while httpx.get(f"{collector.http_url}/ready").status_code != 200:
        if time.monotonic() > deadline:
            collector.stop()
            raise RuntimeError("collector did not become ready")
        time.sleep(0.1)
    return collector


def sdk_spans(
    traces: int,
    seed: int = 5,
    error_rate: float = 0.2,
    end_ns: Callable[[int], int] | None = None,
    resource: dict[str, str] | None = None,
) -> list:
    """Finished spans of ``traces`` generated traces, from the real OTel SDK; ``end_ns(i)``
    places trace i in time (default: each ends when generated)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from trace_insights.generate import Traffic

    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            resource or {"service.name": "agent", "deployment.environment.name": "test"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    traffic = Traffic(error_rate=error_rate, seed=seed)
    for index in range(traces):
        traffic.emit(tracer, index, None if end_ns is None else end_ns(index))
    return list(memory.get_finished_spans())


_TYPE_ATTRIBUTES = {
    "mlflow.spanType": lambda v: json.loads(v),
    "openinference.span.kind": lambda v: v,
    "gen_ai.operation.name": lambda v: {
        "invoke_agent": "AGENT",
        "chat": "CHAT_MODEL",
        "execute_tool": "TOOL",
        "retrieval": "RETRIEVER",
    }[v],
}


def ground_truth(spans: list) -> dict[str, Any]:
    """What the aggregates must say about ``spans``, computed here without the product's code:
    per UTC day bucket, trace counts, statuses, latencies, span types, tool calls and errors."""
    from collections import Counter, defaultdict

    traces: dict[int, list] = defaultdict(list)
    for span in spans:
        traces[span.context.trace_id].append(span)
    days: dict[int, dict[str, Any]] = defaultdict(
        lambda: {
            "traces": 0,
            "status": Counter(),
            "latencies": [],
            "types": Counter(),
            "tool_calls": Counter(),
            "tool_errors": Counter(),
            "tool_traces": Counter(),
            "traces_with_tools": 0,
            "error_and_tool_error": Counter(),
        }
    )
    for members in traces.values():
        start = min(s.start_time for s in members)
        end = max(s.end_time for s in members)
        root = next(s for s in members if s.parent is None)
        day = days[(start // 1_000_000) // 86_400_000 * 86_400_000]
        status = "ERROR" if root.status.status_code.name == "ERROR" else "OK"
        day["traces"] += 1
        day["status"][status] += 1
        day["latencies"].append((end - start) // 1_000_000)
        tools_used, tools_failed = set(), set()
        for span in members:
            for key, decode in _TYPE_ATTRIBUTES.items():
                if key in span.attributes:
                    kind = decode(span.attributes[key])
                    day["types"][kind] += 1
                    break
            tool = span.attributes.get("gen_ai.tool.name") or span.attributes.get("tool.name")
            if kind == "TOOL":
                tool = tool or span.name
                day["tool_calls"][tool] += 1
                tools_used.add(tool)
                if span.status.status_code.name == "ERROR":
                    day["tool_errors"][tool] += 1
                    tools_failed.add(tool)
        for tool in tools_used:
            day["tool_traces"][tool] += 1
        day["traces_with_tools"] += bool(tools_used)
        if status == "ERROR":
            for tool in tools_failed:
                day["error_and_tool_error"][tool] += 1
    return dict(days)


def tool_traces(count: int, tools: list[str], users: list[str], seed: int) -> tuple[list, list]:
    """Finished SDK spans of ``count`` agent traces, each calling 1-3 of ``tools`` (every
    fifth call failing) with a ``user.id`` of ``users``; and what each trace did, as
    (user, [(tool, failing), ...])."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    made = []
    for index in range(count):
        user = users[(index + seed) % len(users)]
        calls = [
            (tools[(index * 7 + n + seed) % len(tools)], (index + n) % 5 == 0)
            for n in range(1 + index % 3)
        ]
        root_attributes = {"gen_ai.operation.name": "invoke_agent", "user.id": user}
        with tracer.start_as_current_span("agent", attributes=root_attributes):
            for tool, failing in calls:
                attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
                with tracer.start_as_current_span(f"call {tool}", attributes=attributes) as span:
                    if failing:
                        span.set_status(Status(StatusCode.ERROR, "failed"))
        made.append((user, calls))
    provider.shutdown()
    return list(memory.get_finished_spans()), made


def publish_to_bus(bus: Any, spans: list, experiment_id: str, chunk: int = 40) -> None:
    """What the collector would write: regrouped OTLP requests, a few traces per request."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from trace_insights.collector.regroup import assemble, regroup

    for start in range(0, len(spans), chunk):
        request = encode_spans(spans[start : start + chunk])
        grouped = regroup(
            request,
            partitions=bus.partitions,
            max_message_bytes=500_000,
            experiment_id=experiment_id,
        )
        for partition, runs in grouped.routed.items():
            for batch in assemble(partition, runs, 500_000):
                bus.append(batch.partition, batch.payload, int(time.time() * 1000))


def service_env(**settings: Any) -> dict[str, str]:
    """The environment of a product process: this one's, minus TRACE_INSIGHTS_*, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_INSIGHTS_")}
    env.update({f"TRACE_INSIGHTS_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def trace_insights(
    *args: str, command: tuple[str, ...] = PRODUCT, cwd: Path = ROOT, **settings: Any
) -> subprocess.CompletedProcess:
    """Run a ``trace-insights`` command to completion."""
    return subprocess.run(
        [*command, *args],
        env=service_env(**settings),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_aggregator(
    command: tuple[str, ...] = PRODUCT, cwd: Path = ROOT, **settings: Any
) -> subprocess.Popen:
    settings.setdefault("aggregator_port", 0)  # several may run side by side
    return subprocess.Popen([*command, "aggregator"], env=service_env(**settings), cwd=cwd)


def schema_url(database_url: str) -> tuple[str, str]:
    """A fresh PostgreSQL schema and a URL whose connections use it."""
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database_url)
    with admin.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    admin.dispose()
    separator = "&" if "?" in database_url else "?"
    return schema, f"{database_url}{separator}options=-csearch_path%3D{schema},public"


VOLUME = "/api/3.0/mlflow/traces/insights/traffic-cost/volume"


def traces_counted(api_url: str, experiment_id: str) -> int:
    """The experiment's trace count; 0 while no span has created it yet (the API's 404). Any
    other answer fails the test with the reply, rather than a KeyError."""
    reply = httpx.post(f"{api_url}{VOLUME}", json={"experiment_ids": [experiment_id]}, timeout=30)
    if reply.status_code == 404 and reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST":
        return 0
    assert reply.status_code == 200, reply.text
    return int(reply.json()["summary"]["count"])


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_quantiles_close(
    digest: Any, values: Any, quantiles: Iterable[float] = (0.5, 0.9, 0.99)
) -> None:
    """A digest's quantiles against numpy's: within half a percent of rank (the t-digest's
    accuracy notion; in value, small sparse samples differ more — see docs/aggregator.md)."""
    import numpy as np

    for q in quantiles:
        low, high = np.quantile(values, [max(0.0, q - 0.005), min(1.0, q + 0.005)])
        assert low <= digest.quantile(q) <= high, (q, low, digest.quantile(q), high)


def publish_assessment(bus: Any, assessment: Any) -> None:
    """What the API will write: the assessment's carrier, in its trace's partition."""
    from trace_insights.core.assessments import encode
    from trace_insights.core.routing import partition_for

    partition = partition_for(bytes.fromhex(assessment.trace_id), bus.partitions)
    bus.append(partition, encode(assessment).SerializeToString(), int(time.time() * 1000))


def assert_rank_close(value: float, values: Any, q: float) -> None:
    """``value`` is a q-quantile of ``values`` to within half a percent of rank."""
    import numpy as np

    low, high = np.quantile(values, [max(0.0, q - 0.005), min(1.0, q + 0.005)])
    assert low <= value <= high, (q, low, value, high)


@dataclass
class Running:
    """A product process serving HTTP on known ports."""

    process: subprocess.Popen
    api_url: str
    otlp_url: str

    def stop(self, timeout_s: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: the graceful path
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_process(
    args: list[str],
    env: dict[str, str],
    api_port: int,
    otlp_port: int,
    command: tuple[str, ...] = PRODUCT,
    cwd: Path = ROOT,
    log: Path | None = None,
) -> Running:
    """Start a ``trace-insights`` command and wait until its API answers /ready; ``log``: a
    file for its output."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import wait_for_port

    output = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        [*command, *args],
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    running = Running(process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{otlp_port}")
    deadline = time.monotonic() + 60
    try:
        wait_for_port(api_port, 60, process)
        while not _ready(running.api_url):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{args[0]} did not become ready")
            time.sleep(0.1)
    except BaseException:
        running.stop()
        raise
    return running


def free_ports() -> tuple[int, int, int]:
    """Loopback ports for ``up``: API, OTLP/HTTP, OTLP/gRPC."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import free_port

    return free_port(), free_port(), free_port()


def start_up(
    data_dir: Path,
    env: dict[str, str],
    ports: tuple[int, int, int] | None = None,
    command: tuple[str, ...] = PRODUCT,
    cwd: Path = ROOT,
    log: Path | None = None,
    demo: bool = False,
) -> Running:
    """``trace-insights up`` over ``data_dir``, on ``ports`` (free ones unless given: a restart
    passes the first run's), once its API is ready; with its demo traffic if ``demo``."""
    api, http, grpc = ports or free_ports()
    args = [
        "up",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api),
        "--otlp-http-port",
        str(http),
        "--otlp-grpc-port",
        str(grpc),
        *(["--demo"] if demo else []),
    ]
    return start_process(args, env, api, http, command, cwd, log)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def export_spans(
    otlp_url: str, spans: list, experiment_id: str, headers: dict[str, str] | None = None
) -> None:
    """Through the SDK's OTLP/HTTP exporter, as an application would."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(
        endpoint=f"{otlp_url}/v1/traces",
        headers={"x-mlflow-experiment-id": experiment_id, **(headers or {})},
    )
    for start in range(0, len(spans), 300):
        assert exporter.export(spans[start : start + 300]) == SpanExportResult.SUCCESS
    exporter.shutdown()


def make_whole(store: Any, experiment_id: str) -> str:
    """Mark an experiment's aggregates whole, as a rebuild of nothing does: stores refuse live
    updates of an experiment no rebuild has made whole. Returns the experiment id."""
    token = random.randrange(1, 2**62)
    assert store.claim_rebuild(experiment_id, token)
    assert store.finish_rebuild(experiment_id, token)
    return experiment_id
