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

from tests.support import wait_for
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


def test_a_static_member_that_stops_leaves_at_once_and_its_partitions_move(kafka_servers):
    """A static member sends no LeaveGroup on close; its partitions would go unread until its
    session expired (here a minute). Stopping removes it from the group instead."""
    topic, group = f"leave-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka_servers.split(","), topic, PARTITIONS, 1)
    session_ms = 60_000
    members = {i: KafkaSource(kafka_servers, topic, group, 10, i, session_ms) for i in "ab"}
    stopping = {i: threading.Event() for i in members}

    def poll(instance: str) -> None:
        while not stopping[instance].is_set():
            members[instance].poll(100)

    threads = {i: threading.Thread(target=poll, args=(i,)) for i in members}
    for thread in threads.values():
        thread.start()
    try:
        split = [PARTITIONS // 2] * 2
        wait_for(lambda: [len(m.assigned()) for m in members.values()] == split, 60, "a split")
        stopping["a"].set()
        threads["a"].join()
        stopped = time.monotonic()
        members["a"].close()
        wait_for(lambda: len(members["b"].assigned()) == PARTITIONS, 60, "b to read every one")
        assert time.monotonic() - stopped < session_ms / 2000, "moved before the session expired"
    finally:
        for event in stopping.values():
            event.set()
        threads["b"].join()
        members["b"].close()
