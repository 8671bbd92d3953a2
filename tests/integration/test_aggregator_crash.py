"""An aggregator process SIGKILLed at random moments, again and again, during a stream of
20,000 traces: the final aggregates and rows equal the ground truth exactly."""

import random
import signal
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.support import ground_truth, schema_url, sdk_spans, start_aggregator, trace_insights
from trace_insights.collector.regroup import assemble, regroup
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.kafka_topic import ensure_topic
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.models import Span, Trace

pytestmark = pytest.mark.integration
TRACES = int(__import__("os").environ.get("CRASH_TEST_TRACES", "20000"))
PARTITIONS = 4
DAY = Resolution.DAY


def _messages(spans, experiment):
    """The topic's messages, as the collector writes them, ~400 spans per request."""
    out = []
    for start in range(0, len(spans), 400):
        grouped = regroup(
            encode_spans(spans[start : start + 400]),
            partitions=PARTITIONS,
            max_message_bytes=900_000,
            experiment_id=experiment,
        )
        for partition, runs in grouped.routed.items():
            out.extend(assemble(partition, runs, 900_000))
    return out


def _traces(store, experiment, days):
    return sum(int(store.read_hash(keys.bucket(experiment, DAY, d)).get("traces", 0)) for d in days)


def test_sigkill_ten_times_loses_and_double_counts_nothing(kafka_servers, redis_url, database_url):
    experiment = f"crash-{uuid.uuid4().hex[:8]}"
    topic = f"spans-{uuid.uuid4().hex[:8]}"
    _, url = schema_url(database_url)
    assert trace_insights("migrate", database_url=url).returncode == 0
    ensure_topic(kafka_servers.split(","), topic, PARTITIONS, 1)
    spans = sdk_spans(TRACES, seed=99)
    truth = ground_truth(spans)
    messages = _messages(spans, experiment)
    duplicates = random.Random(1).sample(messages, len(messages) // 10)
    stream = messages + duplicates  # a tenth delivered twice, at later offsets

    producer = KafkaProducer(bootstrap_servers=kafka_servers, acks="all", linger_ms=5)
    done = threading.Event()
    refused: list[BaseException] = []

    def produce() -> None:
        """Every record is acknowledged by the broker, or the test says so (not as counts
        missing later)."""
        try:
            sent = []
            for index, batch in enumerate(stream):
                sent.append(
                    producer.send(
                        topic, value=batch.payload, key=batch.key, partition=batch.partition
                    )
                )
                if index % 20 == 0:
                    time.sleep(0.05)
            producer.flush()
            for future in sent:
                future.get(timeout=60)
        except Exception as exc:
            refused.append(exc)
        finally:
            done.set()

    settings = dict(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis_url,
        database_url=url,
        spans_topic=topic,
        consumer_group=f"g-{topic}",
        consumer_instance_id="aggregator-0",
        max_poll_records=20,
        log_level="INFO",  # on a failure, the report shows the rebalances
    )
    store = RedisStore(redis_url)
    feeder = threading.Thread(target=produce)
    feeder.start()
    rnd = random.Random(7)
    kills = 0
    process = start_aggregator(**settings)
    try:
        while kills < 10 or not done.is_set():
            time.sleep(rnd.uniform(1.0, 4.0))
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            process = start_aggregator(**settings)
        assert not refused, f"the broker did not take the stream: {refused}"
        deadline = time.monotonic() + 240
        while _traces(store, experiment, truth) < TRACES and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(30)
        feeder.join()
        producer.close()
    assert kills >= 10
    for day, expected in truth.items():
        bucket = store.read_hash(keys.bucket(experiment, DAY, day))
        assert bucket[fields.TRACES] == expected["traces"]
        assert bucket[fields.status("OK")] == expected["status"]["OK"]
        assert bucket[fields.status("ERROR")] == expected["status"]["ERROR"]
        assert bucket[fields.SPANS] == sum(expected["types"].values())
        for kind, count in expected["types"].items():
            assert bucket[fields.span_type(kind)] == count
        for tool, count in expected["tool_calls"].items():
            assert bucket[fields.tool(tool, "calls")] == count
            assert bucket.get(fields.tool(tool, "errors"), 0) == expected["tool_errors"][tool]
        assert bucket.get(fields.LATE_SPANS, 0) == 0
        occurrences = store.read_hash(keys.occurrences(experiment, DAY, day))
        assert occurrences["status=ERROR"] == expected["status"]["ERROR"]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Span)) == len(spans)
        assert connection.scalar(sa.select(sa.func.count()).select_from(Trace)) == TRACES
    engine.dispose()
    store.close()
