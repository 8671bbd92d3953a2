"""Values no store column can hold, sent as a sender would, never stop ingestion: each is
stored made storable or refused with its reason where it enters, and the traffic after it is
stored and counted — over the cluster deployment (PostgreSQL) and ``up`` (SQLite) alike. Each
payload once crashed the aggregator on every restart (issue 14)."""

import os
import threading
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa
from kafka import KafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import (
    Running,
    schema_url,
    start_aggregator,
    trace_insights,
    traces_counted,
    wait_for,
)
from trace_insights.core.assessments import Assessment, encode
from trace_insights.core.routing import EXPERIMENT_ATTRIBUTE, partition_for
from trace_insights.truth.models import Span

pytestmark = pytest.mark.integration
R = "\ufffd"
INT64_MAX = 2**63 - 1


def _span(trace_id: str, name: str = "root", attributes: list | None = None, **times) -> dict:
    now = time.time_ns()
    return {
        "traceId": trace_id,
        "spanId": os.urandom(8).hex(),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(times.get("start", now)),
        "endTimeUnixNano": str(times.get("end", now + 2_000_000)),
        "status": {"code": 1},
        "attributes": attributes or [],
    }


def _attribute(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _send(otlp_url: str, experiment: str, *spans: dict) -> dict:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    reply = httpx.post(
        f"{otlp_url}/v1/traces",
        json=body,
        headers={"x-mlflow-experiment-id": experiment},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def _trace(running: Running, trace_id: str) -> dict:
    url = f"{running.api_url}/api/3.0/mlflow/traces/tr-{trace_id}"
    wait_for(lambda: httpx.get(url).status_code == 200, 60, f"trace {trace_id}")
    return httpx.get(url).json()["trace"]


def test_unstorable_values_are_made_storable_or_refused_and_ingestion_goes_on(
    deployment: Running,
):
    experiment = f"hostile-{uuid.uuid4().hex[:8]}"
    nul, late, long_key, huge, overflow, good = (uuid.uuid4().hex for _ in range(6))
    _send(deployment.otlp_url, experiment, _span(nul, "na\x00me", [_attribute("note", "a\x00b")]))
    refused = _send(deployment.otlp_url, experiment, _span(late, start=2**64 - 1, end=2**64 - 1))
    assert refused["partialSuccess"]["rejectedSpans"] == "1"
    assert "int64" in refused["partialSuccess"]["errorMessage"]
    _send(
        deployment.otlp_url,
        experiment,
        _span(long_key, attributes=[_attribute("tags." + "k" * 300, "v")]),
    )
    tokens = "gen_ai.usage.input_tokens"
    _send(deployment.otlp_url, experiment, _span(huge, attributes=[_attribute(tokens, "1e30")]))
    root = _span(overflow, attributes=[_attribute(tokens, str(INT64_MAX))])
    child = {
        **_span(overflow, "child", [_attribute(tokens, str(INT64_MAX))]),
        "parentSpanId": root["spanId"],
    }
    _send(deployment.otlp_url, experiment, child, root)
    _send(deployment.otlp_url, experiment, _span(good, "after"))

    assert _trace(deployment, good)["data"]["spans"][0]["name"] == "after"
    stored = _trace(deployment, nul)["data"]["spans"][0]
    assert (stored["name"], stored["attributes"]["note"]) == (f"na{R}me", f"a{R}b")
    tags = _trace(deployment, long_key)["trace_info"]["tags"]
    assert {k: v for k, v in tags.items() if not k.startswith("mlflow.")} == {"k" * 249 + "…": "v"}
    for trace_id in (huge, overflow):
        spans = _trace(deployment, trace_id)["data"]["spans"]
        assert [s["input_tokens"] for s in spans] == [None] * len(spans), "no count, not a crash"
    assert httpx.get(f"{deployment.api_url}/api/3.0/mlflow/traces/tr-{late}").status_code == 404

    created = httpx.post(
        f"{deployment.api_url}/api/3.0/mlflow/traces/tr-{good}/assessments",
        json={"assessment": {"assessment_name": "note\x00", "feedback": {"value": "fine\x00"}}},
    )
    assert created.status_code == 200, created.text
    assessment_id = created.json()["assessment"]["assessment_id"]
    url = f"{deployment.api_url}/api/3.0/mlflow/traces/tr-{good}/assessments/{assessment_id}"
    wait_for(lambda: httpx.get(url).status_code == 200, 60, "the assessment to be stored")
    assert httpx.get(url).json()["assessment"]["feedback"]["value"] == f"fine{R}"
    after = uuid.uuid4().hex
    _send(deployment.otlp_url, experiment, _span(after, "after the assessment"))
    _trace(deployment, after)

    wait_for(
        lambda: traces_counted(deployment.api_url, experiment) == 6,
        60,
        "every stored trace to be counted",
    )


def test_another_producers_unstorable_records_are_skipped_and_the_partition_goes_on(
    collector_factory, kafka_servers, redis_url, database_url
):
    """What the collector would refuse, written to the topic by another producer (the OTel
    Collector's Kafka exporter, say): skipped with a log line, or kept as a dead letter when
    it does not even parse; later records are applied."""
    topic = f"spans-{uuid.uuid4().hex[:12]}"
    _, database = schema_url(database_url)
    assert trace_insights("migrate", database_url=database).returncode == 0
    collector = collector_factory(topic)
    aggregator = start_aggregator(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis_url,
        database_url=database,
        spans_topic=topic,
        topic_partitions=4,
        consumer_group=f"g-{topic}",
    )
    try:
        experiment = f"foreign-{uuid.uuid4().hex[:8]}"
        good, after = uuid.uuid4().hex, uuid.uuid4().hex
        _send(collector.http_url, experiment, _span(good, "before"))
        producer = KafkaProducer(bootstrap_servers=kafka_servers)
        for payload in _foreign_records(after):
            producer.send(
                topic,
                payload,
                key=bytes.fromhex(after),
                partition=partition_for(bytes.fromhex(after), 4),
            )
        producer.flush()
        producer.close()
        _send(collector.http_url, experiment, _span(after, "after"))
        engine = sa.create_engine(database)

        def stored() -> set[str]:
            with engine.connect() as connection:
                return set(connection.scalars(sa.select(Span.name)))

        wait_for(lambda: {"before", "after"} <= stored(), 60, "the records around the foreign ones")
        assert stored() == {"before", "after"}
        assert aggregator.poll() is None, "the aggregator is still running"
        engine.dispose()

        def letters() -> list[list[str]]:
            listing = trace_insights("dead-letters", database_url=database)
            assert listing.returncode == 0, listing.stderr
            return [line.split("\t") for line in listing.stdout.splitlines() if "\t" in line]

        [kept] = letters()
        assert (kept[2], kept[3]) == ("decode", "kept"), "the undecodable record is kept whole"
        marked = trace_insights("dead-letters", "--replay", kept[0], database_url=database)
        assert "marked 1 dead letters" in marked.stdout
        # re-appended by the partition's owner, it fails to decode again: a second letter
        wait_for(lambda: [row[3] for row in letters()] == ["replayed", "kept"], 60, "a replay")
    finally:
        aggregator.terminate()
        aggregator.wait(30)


def _foreign_records(trace_id: str) -> list[bytes]:
    """A 100-character experiment stamp; a span past int64 time; a malformed assessment; bytes
    that are not protobuf."""
    records = []
    for stamp, end in (("x" * 100, 2), ("ok", 2**64 - 1)):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key=EXPERIMENT_ATTRIBUTE).value.string_value = stamp
        resource_spans.scope_spans.add().spans.add(
            trace_id=bytes.fromhex(trace_id),
            span_id=os.urandom(8),
            name="foreign",
            start_time_unix_nano=1,
            end_time_unix_nano=end,
        )
        records.append(request.SerializeToString())
    bad = Assessment("a-" + "z" * 80, trace_id, "ok", "n", "v", "HUMAN", None, None, 0)
    records.append(encode(bad).SerializeToString())
    records.append(b"\x0a\xff\xff\xff\xff\x0f not protobuf")
    return records


def test_a_request_nested_too_deep_is_refused_and_takes_no_one_elses_spans(deployment: Running):
    """Sent in the same moment as other clients' spans (which the collector coalesces into the
    same Kafka messages): refused with a 400 naming the limit; every other span is counted."""
    experiment = f"nested-{uuid.uuid4().hex[:8]}"
    value: dict = {"stringValue": "x"}
    for _ in range(50):
        value = {"arrayValue": {"values": [value]}}
    nested = _span(uuid.uuid4().hex, "nested", [{"key": "deep", "value": value}])
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [nested]}]}]}
    good = [uuid.uuid4().hex for _ in range(10)]
    replies: list[httpx.Response] = []

    def nested_request() -> None:
        replies.append(
            httpx.post(
                f"{deployment.otlp_url}/v1/traces",
                json=body,
                timeout=30,
                headers={"x-mlflow-experiment-id": experiment},
            )
        )

    senders = [threading.Thread(target=nested_request)] + [
        threading.Thread(target=_send, args=(deployment.otlp_url, experiment, _span(t)))
        for t in good
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    [refused] = replies
    assert refused.status_code == 400 and "nested deeper" in refused.text, refused.text

    wait_for(
        lambda: traces_counted(deployment.api_url, experiment) == len(good),
        60,
        "every other client's trace",
    )
    for trace_id in good:
        _trace(deployment, trace_id)
