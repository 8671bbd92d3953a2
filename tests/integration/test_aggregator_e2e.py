"""OTel SDK → collector → Kafka → aggregator processes → PostgreSQL and Redis, for real."""

import sys
import time
import uuid

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from tests.support import (
    ROOT,
    assert_quantiles_close,
    ground_truth,
    schema_url,
    sdk_spans,
    start_aggregator,
    trace_insights,
    wait_for,
)
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.generate import exporter_for
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.models import Span, Trace

pytestmark = pytest.mark.integration
DAY = Resolution.DAY


def _export(spans, endpoint: str, experiment: str) -> None:
    """Send already-finished SDK spans through the real OTLP/HTTP exporter."""
    exporter = exporter_for(endpoint, "http", {"x-mlflow-experiment-id": experiment})
    for start in range(0, len(spans), 256):
        assert exporter.export(spans[start : start + 256]).name == "SUCCESS"
    exporter.shutdown()


def _traces_in(store, experiment, days) -> int:
    return sum(int(store.read_hash(keys.bucket(experiment, DAY, d)).get("traces", 0)) for d in days)


def test_sdk_traffic_through_two_aggregators_equals_the_ground_truth(
    collector_factory, kafka_servers, redis_url, database_url
):
    experiment = f"e2e-{uuid.uuid4().hex[:8]}"
    topic = f"spans-{uuid.uuid4().hex[:8]}"
    _, url = schema_url(database_url)
    migrated = trace_insights("migrate", database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema is up to date" in migrated.stdout
    collector = collector_factory(topic)
    settings = dict(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis_url,
        database_url=url,
        spans_topic=topic,
        topic_partitions=4,
        consumer_group=f"g-{topic}",
    )
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import free_port

    port = free_port()
    aggregators = [start_aggregator(**settings, aggregator_port=port), start_aggregator(**settings)]
    store = RedisStore(redis_url)
    try:
        spans = sdk_spans(600, seed=8)
        truth = ground_truth(spans)
        _export(spans[:1500], collector.http_url, experiment)
        _export(spans[1200:], collector.http_url, experiment)  # 300 spans delivered twice
        wait_for(lambda: _traces_in(store, experiment, truth) >= 600, 120, "600 traces")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.get(f"{base}/ready").json() == {"status": "ready", "problems": []}
        text = httpx.get(f"{base}/metrics").text
        assert "trace_insights_aggregator_spans_total" in text
        assert "trace_insights_aggregator_batch_seconds_count" in text
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        for process in aggregators:
            process.terminate()
            process.wait(30)
    for day, expected in truth.items():
        bucket = store.read_hash(keys.bucket(experiment, DAY, day))
        assert bucket[fields.TRACES] == expected["traces"]
        assert bucket[fields.status("ERROR")] == expected["status"]["ERROR"]
        for kind, count in expected["types"].items():
            assert bucket[fields.span_type(kind)] == count
        for tool, count in expected["tool_calls"].items():
            assert bucket[fields.tool(tool, "calls")] == count
        blobs = store.read_blob_hashes([keys.digests(experiment, DAY, day, "latency")])[0]
        assert len(blobs) > 1, "each partition owns its digest"
        digest = sketch.merged(blobs)
        latencies = np.array(expected["latencies"], dtype=float)
        assert_quantiles_close(digest, latencies)
    fences = store.fences(experiment)
    assert sorted(fences) == [0, 1, 2, 3]

    def snapshot():
        return [
            store.read_hash(key(experiment, resolution, day))
            for day in truth
            for resolution in Resolution
            for key in (keys.bucket, keys.occurrences)
        ]

    live = snapshot()
    rebuilt = trace_insights(
        "rebuild", "--experiment-id", experiment, redis_url=redis_url, database_url=url
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt the aggregates of 600 traces" in rebuilt.stdout
    assert snapshot() == live
    assert store.fences(experiment) == fences
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Span)) == len(spans)
        assert connection.scalar(sa.select(sa.func.count()).select_from(Trace)) == 600
    engine.dispose()
    store.close()


def test_ticks_finalize_rootless_traces_on_a_silent_kafka_partition(
    kafka_servers, redis_url, database_url
):
    from tests.support import publish_to_bus
    from trace_insights.aggregator.deltas import Policy
    from trace_insights.aggregator.loop import Aggregator
    from trace_insights.aggregator.source import KafkaSource
    from trace_insights.truth.database import create_engine

    experiment, topic = f"tick-{uuid.uuid4().hex[:8]}", f"spans-{uuid.uuid4().hex[:8]}"
    _, url = schema_url(database_url)
    assert trace_insights("migrate", database_url=url).returncode == 0

    class KafkaAppender:
        partitions = 1

        def __init__(self) -> None:
            from kafka import KafkaProducer

            self.producer = KafkaProducer(bootstrap_servers=kafka_servers, acks="all")

        def append(self, partition, value, timestamp_ms):
            self.producer.send(topic, value=value, partition=partition, timestamp_ms=timestamp_ms)

    from trace_insights.kafka_topic import ensure_topic

    ensure_topic([kafka_servers], topic, 1, 1)
    appender = KafkaAppender()
    spans = [s for s in sdk_spans(1, seed=6) if s.parent is not None]
    publish_to_bus(appender, spans, experiment)
    appender.producer.flush()
    source = KafkaSource(kafka_servers, topic, f"g-{topic}", 100, None, 10_000)
    engine = create_engine(url)
    store = RedisStore(redis_url)
    idle_ms = 60_000
    aggregator = Aggregator(
        source, engine, store, Policy(ttl_ms={r: 10**12 for r in Resolution}), idle_ms
    )
    wait_for(lambda: aggregator.run_once(200) > 0, 30, "the spans")
    now = int(time.time() * 1000)
    assert aggregator.tick_silent_partitions(now + idle_ms + 1_000) == [0]
    day = min(s.start_time for s in spans) // 1_000_000 // 86_400_000 * 86_400_000

    def finalized() -> bool:
        aggregator.run_once(200)
        return bool(store.read_hash(keys.bucket(experiment, DAY, day)).get("traces"))

    wait_for(finalized, 30, "the tick's finalization")
    assert store.read_hash(keys.bucket(experiment, DAY, day))[fields.status("IN_PROGRESS")] == 1
    source.close()
    engine.dispose()
    store.close()
    appender.producer.close()
