"""Live-feed subscribers: one whose place in the change stream is gone (the aggregates were
dropped for a rebuild, or it fell 10,000 updates behind) is told to re-read, then follows on;
many following one experiment share each bucket read."""

import asyncio
import json
import threading
import time
from collections import Counter

from tests.support import make_whole
from tests.unit.conftest import embedded
from trace_insights.api.insights.stream import Snapshots
from trace_insights.core import keys
from trace_insights.core.buckets import Resolution
from trace_insights.stores.base import Update

FEED = "/api/3.0/mlflow/traces/insights/stream"


def _apply(store, experiment: str, fence: int, start: int) -> None:  # type: ignore[no-untyped-def]
    bucket = keys.bucket(experiment, Resolution.MINUTE, start)
    if store.generations([experiment]) == [None]:  # new, or dropped: a rebuild of nothing
        make_whole(store, experiment)
    assert store.apply(
        Update(
            experiment,
            0,
            store.fences(experiment).get(0, -1),
            fence,
            counters=Counter({(bucket, "traces"): 1}),
            changed=[(Resolution.MINUTE.value, start)],
        )
    )


def test_a_subscriber_behind_a_drop_gets_a_reset_then_the_new_changes(tmp_path):
    with embedded(tmp_path) as running:
        context = running.client.app.state.context
        created = running.client.post("/api/2.0/mlflow/experiments/create", json={"name": "r"})
        experiment = created.json()["experiment_id"]
        _apply(context.store, experiment, 1, 0)
        events: list[tuple[str, dict]] = []
        subscribed, done = threading.Event(), threading.Event()

        def follow() -> None:
            params = {"experiment_ids": experiment, "metrics": "volume"}
            with running.client.stream("GET", FEED, params=params) as response:
                subscribed.set()
                name = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line.removeprefix("data: "))))
                        if name == "bucket":
                            done.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert subscribed.wait(10)
        context.store.drop(experiment, None, None)  # a full rebuild starts over
        time.sleep(0.7)  # polls that find the stream still empty: one reset, not one each
        _apply(context.store, experiment, 2, 60_000)
        assert done.wait(10)
        context.closing.set()
        reader.join(10)
        assert [name for name, _ in events] == ["reset", "bucket"]
        assert events[0][1] == {"experiment_id": experiment}
        assert events[1][1]["time_bucket"] == 60_000 and events[1][1]["volume"]["count"] == 1


def test_subscribers_asking_the_same_change_share_one_read(tmp_path):
    with embedded(tmp_path) as running:
        context = running.client.app.state.context
        reads = []
        original = context.store.read_hash
        context.store.read_hash = lambda key: reads.append(key) or original(key)
        _apply(context.store, "e", 1, 0)
        [change] = context.store.changes({"e": "0-0"})

        async def subscribers() -> list:  # type: ignore[type-arg]
            shared = Snapshots()
            ask = [
                shared.read(context, change, Resolution.MINUTE, 0, ["volume"]) for _ in range(20)
            ]
            return await asyncio.gather(*ask)

        answers = asyncio.run(subscribers())
        assert len(reads) == 1
        assert {answer.volume.count for answer in answers} == {1}
