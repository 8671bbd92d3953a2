"""An aggregator joins its group only once it knows the topic's partitions, so the assignment
its group's leader stores covers every partition. A leader that joined first assigned nothing,
and had it died before its metadata caught up, every static member restarted under its
instance id would have been handed that empty assignment again (the SIGKILL test once saw an
aggregator read nothing for 240 s on a topic created a moment before)."""

import logging
import threading
import time
import uuid

import pytest

from trace_insights.aggregator.source import KafkaSource
from trace_insights.kafka_topic import ensure_topic

pytestmark = pytest.mark.integration
PARTITIONS = 4


def _assignments(caplog: pytest.LogCaptureFixture) -> list[list[int]]:
    return [r.fields["partitions"] for r in caplog.records if r.msg == "partitions assigned"]  # type: ignore[attr-defined]


def test_the_first_assignment_covers_every_partition_of_a_topic_created_after_the_start(
    kafka_servers, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="trace_insights.aggregator.source")
    topic, group = f"late-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create = threading.Timer(1.5, ensure_topic, (kafka_servers.split(","), topic, PARTITIONS, 1))
    create.start()
    source = KafkaSource(kafka_servers, topic, group, 10, "aggregator-0", 10_000)
    try:
        deadline = time.monotonic() + 30
        while not _assignments(caplog) and time.monotonic() < deadline:
            source.poll(100)
        assert _assignments(caplog)[0] == list(range(PARTITIONS)), "no empty first assignment"
    finally:
        create.join()
        source.close()
