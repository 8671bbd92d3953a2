"""What an experiment's aggregates hold is bounded by its caps, on every truth and store
pairing: past ``tool_name_cap`` tool names and ``tag_value_cap`` values of a tag key, names
are counted together as ``__other__`` (calls, errors, traces, dimensions; no percentiles), the
names admitted first keep their own counts, and a rebuild admits the same names."""

import time
import uuid
from collections import Counter

import pytest

from tests.contract.test_pipeline_contract import POLICY, FlakyStore, _drain
from tests.support import publish_to_bus, tool_traces
from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.bus import LocalBus
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution, bucket_start
from trace_insights.core.dimensions import OTHER
from trace_insights.core.keys import fields

CAPPED = Policy(ttl_ms=POLICY.ttl_ms, tag_value_cap=2, tool_name_cap=3)
DAY = Resolution.DAY
FIRST_TOOLS, LATER_TOOLS = ["t0", "t1", "t2"], ["t3", "t4", "t5"]
FIRST_USERS, LATER_USERS = ["u0", "u1"], ["u2", "u3", "u4"]


def _expected(made: list) -> dict[str, Counter]:
    """The day bucket's counts as capped, computed from what was sent."""
    counted_tool = {t: t for t in FIRST_TOOLS} | dict.fromkeys(LATER_TOOLS, OTHER)
    counted_user = {u: u for u in FIRST_USERS} | dict.fromkeys(LATER_USERS, OTHER)
    calls, errors, traces, users = Counter(), Counter(), Counter(), Counter()
    for user, trace_calls in made:
        users[counted_user[user]] += 1
        for tool, failing in trace_calls:
            calls[counted_tool[tool]] += 1
            errors[counted_tool[tool]] += failing
        traces.update({counted_tool[tool] for tool, _ in trace_calls})
    return {"calls": calls, "errors": errors, "traces": traces, "users": users}


def _aggregates(store, experiment: str, day: int) -> dict:
    bucket = store.read_hash(keys.bucket(experiment, DAY, day))
    return {
        "bucket": bucket,
        "users": store.read_hash(keys.tag_values(experiment, DAY, day, "user")),
        "occurrences": store.read_hash(keys.occurrences(experiment, DAY, day)),
        "durations": {  # values in each tool's latency digest
            tool: sketch.merged(
                store.read_blob_hashes([keys.digests(experiment, DAY, day, f"tool:{tool}")])[0]
            ).n_values
            for tool in [*FIRST_TOOLS, *LATER_TOOLS, OTHER]
        },
    }


def test_names_past_the_caps_are_counted_together_and_a_rebuild_admits_the_same(
    truth_engine, store
):
    experiment = f"cap{uuid.uuid4().hex[:8]}"
    bus = LocalBus(partitions=3)
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=4), CAPPED, 60_000)
    first_spans, first = tool_traces(30, FIRST_TOOLS, FIRST_USERS, seed=0)
    publish_to_bus(bus, first_spans, experiment)  # the first names fill the registries
    _drain(aggregator)
    later_spans, later = tool_traces(60, FIRST_TOOLS + LATER_TOOLS, FIRST_USERS + LATER_USERS, 1)
    publish_to_bus(bus, later_spans, experiment)
    _drain(aggregator)
    bus.restart()  # a replay of what was not committed changes nothing
    _drain(aggregator)
    expected = _expected(first + later)
    day = bucket_start(int(time.time() * 1000), DAY)
    found = _aggregates(store, experiment, day)
    bucket, occurrences = found["bucket"], found["occurrences"]
    assert bucket[fields.TRACES] == 90
    for tool in [*FIRST_TOOLS, OTHER]:
        assert bucket[fields.tool(tool, "calls")] == expected["calls"][tool]
        assert bucket.get(fields.tool(tool, "errors"), 0) == expected["errors"][tool]
        assert bucket[fields.tool(tool, "traces")] == expected["traces"][tool]
        assert occurrences[f"tools.{tool}=used"] == expected["traces"][tool]
    assert not [f for f in [*bucket, *occurrences] if any(t in f for t in LATER_TOOLS)]
    assert {u: int(n) for u, n in found["users"].items()} == dict(expected["users"])
    durations = found["durations"]
    assert {t: durations[t] for t in FIRST_TOOLS} == {t: expected["calls"][t] for t in FIRST_TOOLS}
    assert not any(durations[t] for t in [*LATER_TOOLS, OTHER]), "no percentiles past the cap"
    rebuild(truth_engine, store, CAPPED, experiment_ids=[experiment])
    again = _aggregates(store, experiment, day)
    sums = {f: again["bucket"].pop(f) for f in list(again["bucket"]) if f.endswith("latency_sum")}
    assert sums == pytest.approx({f: found["bucket"].pop(f) for f in sums})  # float sums' order
    assert again == found, "a rebuild admits the same names"
