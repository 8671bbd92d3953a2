"""How long an aggregator's partitions go unread after it stops, on a real Kafka broker.

Run by hand: ``.venv/bin/python bench/group_handover.py``. Two static members (instance ids, as
the chart sets them) split a 4-partition topic; one is stopped, and the time from the signal
until the other reads every partition is measured:

- a clean stop (SIGTERM), closing as before issue 15 (no LeaveGroup: the baseline) and as now
  (the member removes itself from the group);
- a crash (SIGKILL) at several session timeouts, the only bound on a crash's stall.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import services  # noqa: E402

from trace_insights.aggregator.source import KafkaSource  # noqa: E402
from trace_insights.kafka_topic import ensure_topic  # noqa: E402

PARTITIONS = 4
# One member: polls until SIGTERM, then closes the old way (the consumer alone) or the new one.
MEMBER = """
import logging, signal, sys
logging.basicConfig(level=logging.WARNING, format="member %(asctime)s %(name)s %(message)s")
logging.getLogger("kafka.coordinator").setLevel(logging.INFO)
from trace_insights.aggregator.source import KafkaSource
servers, topic, group, session_ms, leave = sys.argv[1:]
source = KafkaSource(servers, topic, group, 10, "stopping", int(session_ms))
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(1))
while not stopped:
    source.poll(100)
if leave == "1":
    source.close()
else:
    source._consumer.close()
"""


def handover(servers: str, session_ms: int, how: str) -> float:
    """Seconds from stopping one member until the other reads all partitions."""
    topic, group = f"handover-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    ensure_topic(servers.split(","), topic, PARTITIONS, 1)
    survivor = KafkaSource(servers, topic, group, 10, "survivor", session_ms)
    leave = "1" if how == "SIGTERM, leaves the group" else "0"
    member = subprocess.Popen(
        [sys.executable, "-c", MEMBER, servers, topic, group, str(session_ms), leave],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while len(survivor.assigned()) != PARTITIONS // 2:  # the two members split the topic
            if time.monotonic() > deadline:
                raise RuntimeError("the members never split the topic")
            survivor.poll(100)
        stopped = time.monotonic()
        member.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        while len(survivor.assigned()) != PARTITIONS:
            survivor.poll(100)
        return time.monotonic() - stopped
    finally:
        member.kill()
        member.wait()
        survivor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    kafka = services.Kafka(Path(tempfile.mkdtemp(prefix="trace-insights-bench-")) / "kafka")
    kafka.start()
    cases = [
        ("SIGTERM, closes as before (baseline)", 45_000),
        ("SIGTERM, leaves the group", 45_000),
        ("SIGTERM, leaves the group", 10_000),
        ("SIGKILL", 45_000),
        ("SIGKILL", 15_000),
        ("SIGKILL", 10_000),
    ]
    try:
        print(f"| stop | session timeout | partitions unread, s (each of {args.repeats} runs) |")
        print("|---|---:|---|")
        for how, session_ms in cases:
            runs = [handover(kafka.bootstrap_servers, session_ms, how) for _ in range(args.repeats)]
            shown = ", ".join(f"{s:.1f}" for s in runs)
            print(f"| {how} | {session_ms / 1000:.0f} s | {shown} |", flush=True)
    finally:
        kafka.stop()


if __name__ == "__main__":
    main()
